// The words the UI shows: engine codes and error kinds as sentences a person reads. One place,
// so a translation has one file to replace. The same words as the Android shell.

import Foundation
import Presence

public enum Messages {
    public static func status(_ s: AgentStatus) -> String {
        switch s {
        case .online: return "Online"
        case .busy: return "Busy"
        case .offline: return "Offline"
        }
    }

    /// A status inside a sentence ("then online").
    public static func statusWord(_ s: AgentStatus) -> String { status(s).lowercased() }

    /// The status line: "Busy", or "Busy until 14:30, then online" for a timed one. `untilMs`
    /// is on the device's clock; the time is said in the device's zone and locale (with
    /// "tomorrow" or the date when it is not today). No "then" when it is the same status.
    public static func headline(_ s: AgentStatus, untilMs: Int64?, then: AgentStatus?, time: DeviceTime) -> String {
        guard let until = untilMs else { return status(s) }
        let after = then.flatMap { $0 != s ? ", then \(statusWord($0))" : nil } ?? ""
        return "\(status(s)) until \(clock(until, time: time))\(after)"
    }

    /// An instant as the device says it, to the nearest minute: "14:30", "tomorrow 09:00", or
    /// "10 Dec 2026, 09:00". (An end chosen as 14:30 arrives a few milliseconds either side of
    /// it after the trip through the server's clock; it still reads 14:30.)
    public static func clock(_ atMs: Int64, time: DeviceTime) -> String {
        var rounded = (atMs + 30_000) / 60_000
        if (atMs + 30_000) % 60_000 < 0 { rounded -= 1 }
        let at = Date(timeIntervalSince1970: Double(rounded * 60_000) / 1000)
        let now = Date(timeIntervalSince1970: Double(time.nowMs()) / 1000)
        var cal = Calendar(identifier: .gregorian)
        cal.timeZone = time.timeZone
        let f = DateFormatter()
        f.locale = time.locale
        f.timeZone = time.timeZone
        f.dateStyle = .none
        f.timeStyle = .short
        let hm = f.string(from: at)
        if cal.isDate(at, inSameDayAs: now) { return hm }
        if let next = cal.date(byAdding: .day, value: 1, to: now), cal.isDate(at, inSameDayAs: next) {
            return "tomorrow \(hm)"
        }
        f.dateStyle = .medium
        f.timeStyle = .none
        return "\(f.string(from: at)), \(hm)"
    }

    /// A length of time: "15 min", "1 h", "1 h 30 min", "2 days".
    public static func duration(_ ms: Int64) -> String {
        let min = ms / 60_000
        if ms < 60_000 { return "\(ms / 1_000) s" }
        if min < 60 { return "\(min) min" }
        if min % (24 * 60) == 0 {
            let days = min / (24 * 60)
            return days == 1 ? "1 day" : "\(days) days"
        }
        if min % 60 == 0 { return "\(min / 60) h" }
        return "\(min / 60) h \(min % 60) min"
    }

    /// The menu row of a status for a fixed length: "Busy for 15 min".
    public static func forSpan(_ s: AgentStatus, _ ms: Int64) -> String { "\(status(s)) for \(duration(ms))" }

    /// The menu row that asks for a time: "Busy until…".
    public static func untilAsk(_ s: AgentStatus) -> String { "\(status(s)) until…" }

    /// A custom status as the screen names it: its emoji (if any) and its label.
    public static func custom(_ c: CustomStatus) -> String {
        let emoji = c.emoji.flatMap { $0.trimmingCharacters(in: .whitespaces).isEmpty ? nil : $0 }
        return [emoji, c.label].compactMap { $0 }.joined(separator: " ")
    }

    /// A custom status's menu row: "🍔 Lunch · Busy for 1 h".
    public static func customOption(_ c: CustomStatus) -> String {
        custom(c) + " · " + (c.defaultDurationMs.map { forSpan(c.base, $0) } ?? status(c.base))
    }

    /// Why the status last changed, when the agent did not change it by hand (else nil).
    public static func cause(_ c: Cause) -> String? {
        switch c {
        case .manual: return nil
        case .admin: return "Set by an admin"
        case .timer: return "Ended by timer"
        case .idle: return "Away (idle)"
        case .`return`: return "Back from idle"
        }
    }

    /// What is left of the note's length: "88 characters left", or why it cannot be sent.
    public static func noteLeft(_ length: Int) -> String {
        let left = StatusChoices.noteMax - length
        return left >= 0 ? "\(left) characters left" : noteTooLong(length)
    }

    public static func noteTooLong(_ length: Int) -> String {
        "The note has \(length) characters; at most \(StatusChoices.noteMax) fit."
    }

    public static func connection(_ c: Connection) -> String {
        switch c {
        case .connected: return "Connected"
        case .connecting: return "Connecting…"
        case .offline: return "Can't reach the server"
        case .noNetwork: return "No network"
        }
    }

    public static func chatbox(_ s: ChatboxStatus) -> String {
        switch s {
        case .online: return "Chat is online"
        case .busy: return "Chat is busy"
        case .offline: return "Chat is offline"
        }
    }

    public static func reason(_ r: Reason) -> String {
        switch r {
        case .agentsOnline: return "an agent is online"
        case .agentsBusy: return "agents are busy"
        case .noAgentsOnline: return "no agent is online"
        case .outsideOpeningHours: return "outside opening hours"
        }
    }

    /// An error thrown by an engine call.
    public static func error(_ e: Error) -> String {
        switch e {
        case ChoiceError.noteTooLong(let length): return noteTooLong(length)
        case PresenceError.Network:
            return "Can't reach the server. Your change is kept and sent when it is back."
        case PresenceError.Unauthorized: return "Wrong account, email or password."
        case PresenceError.SessionExpired: return "You were signed out. Sign in again."
        case PresenceError.InvalidInput(let detail): return "That was refused: \(detail)"
        case PresenceError.Server: return "The server had a problem. Try again in a moment."
        case PresenceError.Storage(let detail): return "This device could not save the change: \(detail)"
        case PresenceError.Internal(let detail): return "Something went wrong inside the app: \(detail)"
        default: return "Something went wrong: \(e)"
        }
    }

    /// The engine's latest failure worth showing (`snapshot.lastError`).
    public static func lastError(_ e: LastError) -> String {
        switch e.code {
        case "session_expired": return "You were signed out. Sign in again."
        case "connect_failed", "timeout", "connection_lost":
            return "Can't reach the server. Changes are kept and sent when it is back."
        case "no_network": return "No network. Changes are kept and sent when it is back."
        case "rate_limited", "http_429": return "Too many attempts. Wait a moment."
        default:
            if e.code.hasPrefix("http_5") || e.code == "internal" {
                return "The server had a problem. Presence keeps trying."
            }
            return "The server refused a change: \(e.detail)"
        }
    }

    /// A change the server refused for good, as the outbox row shows it.
    public static func wedged(_ op: WedgedOp) -> String {
        let what: String
        switch op.kind {
        case .setStatus: what = "Your status change"
        case .registerPush: what = "Notifications for this device"
        case .endSession: what = "Signing out"
        }
        return "\(what) was refused: \(op.detail)"
    }
}
