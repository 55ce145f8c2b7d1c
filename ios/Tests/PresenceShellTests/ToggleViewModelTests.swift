import Foundation
import Presence
import PresenceShell
import XCTest

/// The toggle view model on its own: over a real engine whose snapshots stand still and whose
/// `setStatus` fails on demand, so whatever the view model publishes comes from the view model.
final class ToggleViewModelTests: XCTestCase {
    static var server: TestServer!

    override class func setUp() {
        super.setUp()
        do { server = try TestServer() } catch { fatalError("cannot start presence-server: \(error)") }
    }

    override class func tearDown() {
        server = nil
        removeTempDirs()
        super.tearDown()
    }

    func testAFailedActionShowsItsErrorAtOnceAndASucceedingOneClearsIt() async throws {
        let real = try await openShell(Self.server).engine
        let engine = StillEngine(real)
        let toggle = ToggleViewModel(engine: engine)
        let seen = StateRecorder(toggle.states())
        let first = try await seen.next { _ in true }
        XCTAssertNil(first.error)

        engine.failure = PresenceError.Server(detail: "status 503")
        let stored = await toggle.choose(.busy)
        XCTAssertFalse(stored)
        let shown = try await seen.next { $0.error != nil }
        XCTAssertEqual(shown.error, "The server had a problem. Try again in a moment.")
        XCTAssertEqual(toggle.current.error, shown.error)

        engine.failure = nil
        let again = await toggle.choose(.busy)
        XCTAssertTrue(again)
        _ = try await seen.next { $0.error == nil }
        XCTAssertNil(toggle.current.error)
        seen.stop()
        await real.shutdown()
    }

    func testADismissedErrorGoesAtOnceUntilTheNextFailure() async throws {
        let real = try await openShell(Self.server).engine
        let engine = StillEngine(real)
        let toggle = ToggleViewModel(engine: engine)
        let seen = StateRecorder(toggle.states())
        _ = try await seen.next { _ in true }

        engine.failure = PresenceError.Storage(detail: "disk full")
        await toggle.choose(.busy)
        _ = try await seen.next { $0.error != nil }
        toggle.dismissError()
        _ = try await seen.next { $0.error == nil }
        XCTAssertNil(toggle.current.error)

        await toggle.choose(.offline)
        let again = try await seen.next { $0.error != nil }
        XCTAssertEqual(again.error, "This device could not save the change: disk full")
        seen.stop()
        await real.shutdown()
    }
}

/// A real engine's current snapshot, served once to every subscriber and never followed by
/// another; `setStatus` and `setStatusWith` throw `failure` when one is set and do nothing
/// otherwise.
private final class StillEngine: ShellEngine, @unchecked Sendable {
    private let inner: ShellEngine
    private let lock = NSLock()
    private var failing: Error?
    private var streams: [AsyncStream<ClientSnapshot>.Continuation] = []

    init(_ inner: ShellEngine) { self.inner = inner }

    deinit { finishAll() }

    var failure: Error? {
        get { lock.lock(); defer { lock.unlock() }; return failing }
        set { lock.lock(); failing = newValue; lock.unlock() }
    }

    var snapshot: ClientSnapshot { inner.snapshot }
    func snapshots() -> AsyncStream<ClientSnapshot> {
        let now = inner.snapshot
        return AsyncStream(bufferingPolicy: .bufferingNewest(1)) { c in
            c.yield(now)
            lock.lock()
            streams.append(c)
            lock.unlock()
        }
    }
    func serverTimeNow() -> Int64 { inner.serverTimeNow() }
    func login(account: String, email: String, password: String) async throws {}
    func logout() async throws {}
    func setStatus(_ status: AgentStatus) async throws { if let e = failure { throw e } }
    func setStatusWith(_ request: StatusRequest) async throws { if let e = failure { throw e } }
    func setLifecycle(_ lifecycle: Lifecycle) async {}
    func setNetworkAvailable(_ available: Bool) async {}
    func handlePush(userInfo: [AnyHashable: Any]) async throws {}
    func backgroundRefresh(deadline: TimeInterval) async throws {}
    func registerPush(provider: PushProvider, token: String, keys: UnifiedPushKeys?) async throws {}
    func retryWedged(opId: String) async throws {}
    func discardWedged(opId: String) async throws {}
    func shutdown() async { finishAll() }

    private func finishAll() {
        lock.lock()
        let open = streams
        streams = []
        lock.unlock()
        for c in open { c.finish() }
    }
}

/// Every state a `states()` stream publishes, in order, read from the test with a deadline.
private final class StateRecorder: @unchecked Sendable {
    private let lock = NSLock()
    private var states: [ToggleState] = []
    private var read = 0
    private var task: Task<Void, Never>?

    init(_ stream: AsyncStream<ToggleState>) {
        task = Task { for await s in stream { self.add(s) } }
    }

    /// The first state published after the last one returned that satisfies `predicate`,
    /// waiting at most `timeout` seconds for it.
    func next(timeout: TimeInterval = 2, _ predicate: (ToggleState) -> Bool) async throws -> ToggleState {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            if let s = take(predicate) { return s }
            if Date() >= deadline {
                throw HarnessError(description: "no such state published within \(timeout) s; published: \(all)")
            }
            try await Task.sleep(nanoseconds: 10_000_000)
        }
    }

    func stop() { task?.cancel() }

    private var all: [ToggleState] {
        lock.lock()
        defer { lock.unlock() }
        return states
    }

    private func add(_ s: ToggleState) {
        lock.lock()
        states.append(s)
        lock.unlock()
    }

    private func take(_ predicate: (ToggleState) -> Bool) -> ToggleState? {
        lock.lock()
        defer { lock.unlock() }
        while read < states.count {
            let s = states[read]
            read += 1
            if predicate(s) { return s }
        }
        return nil
    }
}
