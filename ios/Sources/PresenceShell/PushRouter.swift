// The one place a push goes: `AppDelegate.application(_:didReceiveRemoteNotification:
// fetchCompletionHandler:)` forwards the APNs `userInfo` here. The router hands it to the
// engine as it arrived, waits until the engine is done (a renew push is answered with one
// heartbeat before this returns, so the completion handler can be called right after), and
// reports what happened.

import Foundation
import Presence

public enum PushOutcome: Equatable, Sendable {
    /// Applied (`status`, `session_ended`) or answered (`renew`).
    case applied(type: String)
    /// Well-formed but changed nothing: for another session, or not newer than what is shown.
    case stale(why: String)
    /// Not a Presence push; the engine refused it and changed nothing.
    case malformed(why: String)

    /// Whether the app got new data, for `UIBackgroundFetchResult`.
    public var newData: Bool {
        if case .applied = self { return true }
        return false
    }
}

public final class PushRouter: @unchecked Sendable {
    private let engine: ShellEngine
    private let report: @Sendable (PushOutcome) -> Void
    private let lock = NSLock()
    private var last: PushOutcome?

    public init(engine: ShellEngine, report: @escaping @Sendable (PushOutcome) -> Void = { _ in }) {
        self.engine = engine
        self.report = report
    }

    /// The outcome of the latest push.
    public var lastOutcome: PushOutcome? {
        lock.lock()
        defer { lock.unlock() }
        return last
    }

    /// An APNs background notification's `userInfo`, as the system delivered it.
    @discardableResult
    public func onRemoteNotification(_ userInfo: [AnyHashable: Any]) async -> PushOutcome {
        let before = engine.snapshot
        let outcome: PushOutcome
        do {
            try await engine.handlePush(userInfo: userInfo)
            outcome = classify(userInfo, before: before)
        } catch PresenceError.InvalidInput(let detail) {
            outcome = .malformed(why: detail)
        } catch {
            outcome = .malformed(why: "\(error)")
        }
        remember(outcome)
        report(outcome)
        return outcome
    }

    private func remember(_ outcome: PushOutcome) {
        lock.lock()
        last = outcome
        lock.unlock()
    }

    private func classify(_ userInfo: [AnyHashable: Any], before: ClientSnapshot) -> PushOutcome {
        let payload = presencePayload(userInfo)
        let type = payload["type"] as? String ?? "unknown"
        if let session = payload["session_id"] as? String, session != before.session.sessionId {
            return .stale(why: "for a session this device no longer has")
        }
        if type == "status", let shown = before.status?.version, engine.snapshot.status?.version == shown {
            return .stale(why: "not newer than version \(shown)")
        }
        return .applied(type: type)
    }
}

/// The Presence payload inside a `userInfo`: its `presence` object (or JSON string), else the
/// `userInfo` itself.
func presencePayload(_ userInfo: [AnyHashable: Any]) -> [String: Any] {
    if let object = userInfo["presence"] as? [String: Any] { return object }
    if let text = userInfo["presence"] as? String,
        let object = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]
    {
        return object
    }
    var flat: [String: Any] = [:]
    for (k, v) in userInfo { if let k = k as? String { flat[k] = v } }
    return flat
}
