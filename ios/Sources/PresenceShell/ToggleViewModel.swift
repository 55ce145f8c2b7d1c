// The toggle screen's state and actions, free of UIKit and SwiftUI: the app's SwiftUI view
// draws `ToggleState` and calls the async actions. Actions never throw; a failure becomes the
// `error` a person reads.

import Foundation
import Presence

public struct WedgedChange: Equatable, Sendable {
    public let opId: String
    public let text: String
}

public struct ChatboxLine: Equatable, Sendable {
    public let text: String
    public let reason: String
    public let message: String?
}

/// Everything the toggle screen draws. `wanted` is what the agent chose (shown at once),
/// `confirmed` what the server has, `pending` while they may differ.
public struct ToggleState: Equatable, Sendable {
    public var signedIn: Bool
    public var signedOutBecause: String?
    public var wanted: AgentStatus?
    public var confirmed: AgentStatus?
    public var pending: Bool
    public var connection: String
    public var connectionState: Connection
    public var chatbox: ChatboxLine?
    public var waiting: Int
    public var wedged: [WedgedChange]
    public var error: String?
}

public final class ToggleViewModel: @unchecked Sendable {
    private let engine: ShellEngine
    private let lock = NSLock()
    private var actionError: String?
    private var subscribers: [UUID: Subscriber] = [:]

    /// One `states()` stream and the latest snapshot it was given.
    private final class Subscriber {
        let continuation: AsyncStream<ToggleState>.Continuation
        var snapshot: ClientSnapshot?
        init(_ continuation: AsyncStream<ToggleState>.Continuation) { self.continuation = continuation }
    }

    public init(engine: ShellEngine) { self.engine = engine }

    /// The state for the engine's snapshot now.
    public var current: ToggleState {
        let s = engine.snapshot
        return locked { render(s, actionError) }
    }

    /// The current state, then one for every new snapshot and every change of an action's
    /// error (shown at once, without waiting for a snapshot).
    public func states() -> AsyncStream<ToggleState> {
        let snapshots = engine.snapshots()
        return AsyncStream(bufferingPolicy: .bufferingNewest(1)) { continuation in
            let id = UUID()
            let subscriber = Subscriber(continuation)
            locked { subscribers[id] = subscriber }
            let task = Task {
                for await s in snapshots {
                    self.locked {
                        subscriber.snapshot = s
                        continuation.yield(self.render(s, self.actionError))
                    }
                }
                continuation.finish()
            }
            continuation.onTermination = { _ in
                task.cancel()
                self.locked { self.subscribers[id] = nil }
            }
        }
    }

    @discardableResult
    public func signIn(account: String, email: String, password: String) async -> Bool {
        await act {
            try await self.engine.login(
                account: account.trimmingCharacters(in: .whitespaces),
                email: email.trimmingCharacters(in: .whitespaces), password: password)
        }
    }

    /// Signs out: the session ends on the server at once.
    @discardableResult
    public func signOut() async -> Bool { await act { try await self.engine.logout() } }

    /// Returns once the choice is stored on the device; the engine delivers it.
    @discardableResult
    public func choose(_ status: AgentStatus) async -> Bool { await act { try await self.engine.setStatus(status) } }

    @discardableResult
    public func retry(_ opId: String) async -> Bool { await act { try await self.engine.retryWedged(opId: opId) } }

    @discardableResult
    public func discard(_ opId: String) async -> Bool { await act { try await self.engine.discardWedged(opId: opId) } }

    /// Hides the action's error until the next action fails.
    public func dismissError() { setError(nil) }

    private func act(_ work: () async throws -> Void) async -> Bool {
        do {
            try await work()
            setError(nil)
            return true
        } catch {
            setError(Messages.error(error))
            return false
        }
    }

    /// Stores the action's error and, when it changed, publishes it at once with each stream's
    /// latest snapshot.
    private func setError(_ e: String?) {
        locked {
            guard actionError != e else { return }
            actionError = e
            for subscriber in subscribers.values {
                guard let s = subscriber.snapshot else { continue }
                subscriber.continuation.yield(render(s, e))
            }
        }
    }

    private func locked<T>(_ f: () -> T) -> T {
        lock.lock()
        defer { lock.unlock() }
        return f()
    }

    func render(_ s: ClientSnapshot, _ actionError: String?) -> ToggleState {
        let lastError = s.lastError.map(Messages.lastError)
        return ToggleState(
            signedIn: s.session.state == .active,
            signedOutBecause: s.session.state == .expired ? (lastError ?? "You were signed out.") : nil,
            wanted: s.status?.current,
            confirmed: s.status?.confirmed,
            pending: s.status?.pending ?? false,
            connection: Messages.connection(s.connection),
            connectionState: s.connection,
            chatbox: s.chatbox.map {
                ChatboxLine(text: Messages.chatbox($0.status), reason: Messages.reason($0.reason), message: $0.message)
            },
            waiting: Int(s.outbox.pending),
            wedged: s.outbox.wedged.map { WedgedChange(opId: $0.opId, text: Messages.wedged($0)) },
            error: actionError ?? lastError)
    }
}
