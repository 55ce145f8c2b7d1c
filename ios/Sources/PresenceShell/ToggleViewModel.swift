// The toggle screen's state and actions, free of UIKit and SwiftUI: the app's SwiftUI view
// draws `ToggleState` and calls the async actions. Actions never throw; a failure becomes the
// `error` a person reads. What each choice sends is `StatusChoices`'; times are said in the
// `DeviceTime`'s zone and locale, on the device's clock (the engine's estimate of the
// server's clock converts the server's `until`).

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
/// `confirmed` what the server has, `pending` while they may differ. `headline` says the shown
/// status with its end and what follows ("Busy until 14:30, then online"), `custom` the custom
/// status ("🍔 Lunch"), `note` its note, `cause` why it changed when the agent did not change
/// it by hand ("Ended by timer"). `options` is the status menu; `noteDraft` the note being
/// written, sent with the next choice, with `noteLeft` ("88 characters left") and
/// `noteTooLong` when it cannot be sent.
public struct ToggleState: Equatable, Sendable {
    public var signedIn: Bool
    public var signedOutBecause: String?
    public var wanted: AgentStatus?
    public var confirmed: AgentStatus?
    public var pending: Bool
    public var headline: String
    public var custom: String?
    public var note: String?
    public var cause: String?
    public var options: [Option]
    public var noteDraft: String
    public var noteLeft: String
    public var noteTooLong: Bool
    public var connection: String
    public var connectionState: Connection
    public var chatbox: ChatboxLine?
    public var waiting: Int
    public var wedged: [WedgedChange]
    public var error: String?
}

public final class ToggleViewModel: @unchecked Sendable {
    private let engine: ShellEngine
    private let time: DeviceTime
    private let lock = NSLock()
    private var actionError: String?
    private var noteDraft = ""
    private var subscribers: [UUID: Subscriber] = [:]

    /// One `states()` stream and the latest snapshot it was given.
    private final class Subscriber {
        let continuation: AsyncStream<ToggleState>.Continuation
        var snapshot: ClientSnapshot?
        init(_ continuation: AsyncStream<ToggleState>.Continuation) { self.continuation = continuation }
    }

    public init(engine: ShellEngine, time: DeviceTime = SystemDeviceTime()) {
        self.engine = engine
        self.time = time
    }

    /// The state for the engine's snapshot now.
    public var current: ToggleState {
        let s = engine.snapshot
        return locked { render(s, actionError, noteDraft) }
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
                        continuation.yield(self.render(s, self.actionError, self.noteDraft))
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

    /// `status` with no end (and the note being written).
    @discardableResult
    public func choose(_ status: AgentStatus) async -> Bool { await choose(.plain(status)) }

    /// Sends `choice` with the note being written; returns once it is stored on the device (the
    /// engine delivers it). The note is cleared once sent; a note that is too long refuses the
    /// choice and nothing is stored.
    @discardableResult
    public func choose(_ choice: Choice) async -> Bool {
        await act {
            let note = self.locked { self.noteDraft }
            let req = try StatusChoices.request(choice, shown: self.engine.snapshot.status, note: note, time: self.time)
            try await self.engine.setStatusWith(req)
            self.editNote("")
        }
    }

    /// `status` until the next `at` on the device's wall clock (the time picker's answer).
    @discardableResult
    public func chooseUntil(_ status: AgentStatus, _ at: TimeOfDay) async -> Bool { await choose(.until(status, at)) }

    /// The note being written, as typed (checked when sent).
    public func editNote(_ text: String) {
        locked {
            guard noteDraft != text else { return }
            noteDraft = text
            publish()
        }
    }

    /// Keeps the shown status (its end, what follows, its custom status) with the note being
    /// written.
    @discardableResult
    public func saveNote() async -> Bool {
        await act {
            let note = self.locked { self.noteDraft }
            guard
                let req = try StatusChoices.keepWithNote(
                    self.engine.snapshot.status, note: note, serverNowMs: self.engine.serverTimeNow())
            else { return }
            try await self.engine.setStatusWith(req)
            self.editNote("")
        }
    }

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
            publish()
        }
    }

    /// Publishes the state again, with each stream's latest snapshot. Under the lock.
    private func publish() {
        for subscriber in subscribers.values {
            guard let s = subscriber.snapshot else { continue }
            subscriber.continuation.yield(render(s, actionError, noteDraft))
        }
    }

    private func locked<T>(_ f: () -> T) -> T {
        lock.lock()
        defer { lock.unlock() }
        return f()
    }

    func render(_ s: ClientSnapshot, _ actionError: String?, _ draft: String) -> ToggleState {
        let lastError = s.lastError.map(Messages.lastError)
        let st = s.status
        // The server's `until` on the device's clock: the same instant the device shows as that time.
        let offset = time.nowMs() - engine.serverTimeNow()
        let untilHere = st?.until.map { $0 + offset }
        let noteLength = StatusChoices.noteLength(draft)
        let custom = st?.customStatus.map { id in s.customStatuses.first { $0.id == id }.map(Messages.custom) ?? id }
        return ToggleState(
            signedIn: s.session.state == .active,
            signedOutBecause: s.session.state == .expired ? (lastError ?? "You were signed out.") : nil,
            wanted: st?.current,
            confirmed: st?.confirmed,
            pending: st?.pending ?? false,
            headline: st.map { Messages.headline($0.current, untilMs: untilHere, then: $0.then, time: time) } ?? "—",
            custom: custom,
            note: st?.note,
            cause: st.flatMap { Messages.cause($0.cause) },
            options: StatusChoices.menu(s.customStatuses),
            noteDraft: draft,
            noteLeft: Messages.noteLeft(noteLength),
            noteTooLong: noteLength > StatusChoices.noteMax,
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
