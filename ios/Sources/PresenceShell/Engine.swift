// What the shell needs from the Presence engine, and nothing more. `RustEngine` is the real
// one (the generated bindings over libpresence_ffi); the tests use it too, against a real
// server. Nothing in PresenceShell imports UIKit, SwiftUI or BackgroundTasks, so it builds and
// is tested on Linux.

import Foundation
import Presence

public protocol ShellEngine: AnyObject, Sendable {
    var snapshot: ClientSnapshot { get }
    func snapshots() -> AsyncStream<ClientSnapshot>
    func serverTimeNow() -> Int64
    func login(account: String, email: String, password: String) async throws
    func logout() async throws
    func setStatus(_ status: AgentStatus) async throws
    /// A status with its end, what follows, custom status and note (through the outbox).
    func setStatusWith(_ request: StatusRequest) async throws
    func setLifecycle(_ lifecycle: Lifecycle) async
    func setNetworkAvailable(_ available: Bool) async
    func handlePush(userInfo: [AnyHashable: Any]) async throws
    func backgroundRefresh(deadline: TimeInterval) async throws
    func registerPush(provider: PushProvider, token: String, keys: UnifiedPushKeys?) async throws
    func retryWedged(opId: String) async throws
    func discardWedged(opId: String) async throws
    func shutdown() async
}

/// `ShellEngine` over the bindings' `PresenceEngine`.
public final class RustEngine: ShellEngine, @unchecked Sendable {
    public let inner: PresenceEngine

    public init(_ inner: PresenceEngine) { self.inner = inner }

    public static func open(_ config: ClientConfig) async throws -> RustEngine {
        RustEngine(try await PresenceEngine.open(config))
    }

    public var snapshot: ClientSnapshot { inner.snapshot }
    public func snapshots() -> AsyncStream<ClientSnapshot> { inner.snapshots() }
    public func serverTimeNow() -> Int64 { inner.serverTimeNow() }
    public func login(account: String, email: String, password: String) async throws {
        try await inner.login(account: account, email: email, password: password)
    }
    public func logout() async throws { try await inner.logout() }
    public func setStatus(_ status: AgentStatus) async throws { try await inner.setStatus(status) }
    public func setStatusWith(_ request: StatusRequest) async throws { try await inner.setStatusWith(request) }
    public func setLifecycle(_ lifecycle: Lifecycle) async { await inner.setLifecycle(lifecycle) }
    public func setNetworkAvailable(_ available: Bool) async { await inner.setNetworkAvailable(available) }
    public func handlePush(userInfo: [AnyHashable: Any]) async throws { try await inner.handlePush(userInfo: userInfo) }
    public func backgroundRefresh(deadline: TimeInterval) async throws {
        try await inner.backgroundRefresh(deadline: deadline)
    }
    public func registerPush(provider: PushProvider, token: String, keys: UnifiedPushKeys?) async throws {
        try await inner.registerPush(provider: provider, token: token, keys: keys)
    }
    public func retryWedged(opId: String) async throws { try await inner.retryWedged(opId: opId) }
    public func discardWedged(opId: String) async throws { try await inner.discardWedged(opId: opId) }
    public func shutdown() async { await inner.shutdown() }
}
