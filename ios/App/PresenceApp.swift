// The app glue: SwiftUI toggle, remote-notification registration and silent pushes, and the
// BGAppRefreshTask. Each callback is one line into PresenceShell. Behind canImport(UIKit):
// parsed by the Linux build, type-checked only by Xcode. Keep it this small.

#if canImport(UIKit) && canImport(BackgroundTasks)
import BackgroundTasks
import Presence
import PresenceShell
import SwiftUI
import UIKit

let refreshTaskId = "dev.presence.app.refresh"

/// The process's one shell, opened at launch.
@MainActor final class AppModel: ObservableObject {
    static let shared = AppModel()
    @Published var state: ToggleState?
    private(set) var shell: Shell?

    func start() async throws {
        let dir = FileManager.default.urls(for: .applicationSupportDirectory, in: .userDomainMask)[0]
            .appendingPathComponent("presence")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let config = ClientConfig(
            serverUrl: "https://presence.example.com", dataDir: dir.path,
            device: DeviceInfo(platform: .ios, name: UIDevice.current.name, appVersion: "1.0"), tuning: nil)
        let shell = try await Shell.open(config)
        self.shell = shell
        for await state in shell.toggle.states() { self.state = state }
    }

    /// Submits the planner's refresh, or cancels the pending one when there is none.
    func schedule(_ plan: RefreshPlan?) {
        BGTaskScheduler.shared.cancel(taskRequestWithIdentifier: refreshTaskId)
        guard let plan = plan else { return }
        let request = BGAppRefreshTaskRequest(identifier: refreshTaskId)
        request.earliestBeginDate = Date(timeIntervalSinceNow: plan.delay)
        try? BGTaskScheduler.shared.submit(request)
    }
}

final class AppDelegate: NSObject, UIApplicationDelegate {
    func application(_ application: UIApplication, didFinishLaunchingWithOptions _: [UIApplication.LaunchOptionsKey: Any]? = nil) -> Bool {
        BGTaskScheduler.shared.register(forTaskWithIdentifier: refreshTaskId, using: nil) { task in Self.refresh(task as! BGAppRefreshTask) }
        application.registerForRemoteNotifications()
        return true
    }

    func application(_: UIApplication, didRegisterForRemoteNotificationsWithDeviceToken deviceToken: Data) {
        Task { await AppModel.shared.shell?.registration.onDeviceToken(deviceToken) }
    }

    func application(_: UIApplication, didReceiveRemoteNotification userInfo: [AnyHashable: Any], fetchCompletionHandler completion: @escaping (UIBackgroundFetchResult) -> Void) {
        Task { completion(await AppModel.shared.shell?.push.onRemoteNotification(userInfo).newData == true ? .newData : .noData) }
    }

    static func refresh(_ task: BGAppRefreshTask) {
        let work = Task { @MainActor in
            let done = await AppModel.shared.shell?.planner.refreshThenPlan()
            AppModel.shared.schedule(done?.next)
            task.setTaskCompleted(success: done?.result.finished == true)
        }
        task.expirationHandler = { work.cancel() }
    }
}

@main struct PresenceIOSApp: App {
    @UIApplicationDelegateAdaptor(AppDelegate.self) var delegate
    @Environment(\.scenePhase) private var phase
    @StateObject private var model = AppModel.shared

    var body: some Scene {
        WindowGroup { ToggleView(model: model).task { try? await model.start() } }
            .onChange(of: phase) { phase in
                Task {
                    if phase == .active { await model.shell?.planner.onActive() }
                    if phase == .background { model.schedule(await model.shell?.planner.onBackground()) }
                }
            }
    }
}
#endif
