// The platform-free half of the iOS app, one per process: the engine and the pieces the app
// glue calls into, each OS callback in one line.

import Foundation
import Presence

public final class Shell: @unchecked Sendable {
    public let engine: ShellEngine
    public let toggle: ToggleViewModel
    public let registration: PushRegistration
    public let push: PushRouter
    public let planner: BackgroundPlanner

    public init(engine: ShellEngine, timings: RefreshTimings = RefreshTimings(), time: DeviceTime = SystemDeviceTime()) {
        self.engine = engine
        toggle = ToggleViewModel(engine: engine, time: time)
        registration = PushRegistration(engine: engine)
        push = PushRouter(engine: engine)
        planner = BackgroundPlanner(engine: engine, registration: registration, timings: timings)
    }

    public static func open(
        _ config: ClientConfig, timings: RefreshTimings = RefreshTimings(), time: DeviceTime = SystemDeviceTime()
    ) async throws -> Shell {
        Shell(engine: try await RustEngine.open(config), timings: timings, time: time)
    }
}
