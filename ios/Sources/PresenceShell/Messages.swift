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
