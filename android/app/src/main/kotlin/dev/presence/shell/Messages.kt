package dev.presence.shell

import dev.presence.AgentStatus
import dev.presence.ChatboxStatus
import dev.presence.Connection
import dev.presence.LastError
import dev.presence.OpKind
import dev.presence.PresenceException
import dev.presence.Reason
import dev.presence.WedgedOp

/**
 * The words the UI shows. Codes and exception kinds come from the engine; a person reads a
 * sentence that says what happened and what to do. One place, so a translation has one file
 * to replace.
 */
object Messages {
    fun status(s: AgentStatus): String = when (s) {
        AgentStatus.ONLINE -> "Online"
        AgentStatus.BUSY -> "Busy"
        AgentStatus.OFFLINE -> "Offline"
    }

    fun connection(c: Connection): String = when (c) {
        Connection.CONNECTED -> "Connected"
        Connection.CONNECTING -> "Connecting…"
        Connection.OFFLINE -> "Can't reach the server"
        Connection.NO_NETWORK -> "No network"
    }

    fun chatbox(s: ChatboxStatus): String = when (s) {
        ChatboxStatus.ONLINE -> "Chat is online"
        ChatboxStatus.BUSY -> "Chat is busy"
        ChatboxStatus.OFFLINE -> "Chat is offline"
    }

    fun reason(r: Reason): String = when (r) {
        Reason.AGENTS_ONLINE -> "an agent is online"
        Reason.AGENTS_BUSY -> "agents are busy"
        Reason.NO_AGENTS_ONLINE -> "no agent is online"
        Reason.OUTSIDE_OPENING_HOURS -> "outside opening hours"
    }

    /** An exception from an engine call. */
    fun error(e: Throwable): String = when (e) {
        is PresenceException.Network -> "Can't reach the server. Your change is kept and sent when it is back."
        is PresenceException.Unauthorized -> "Wrong account, email or password."
        is PresenceException.SessionExpired -> "You were signed out. Sign in again."
        is PresenceException.InvalidInput -> "That was refused: ${e.detail}"
        is PresenceException.Server -> "The server had a problem. Try again in a moment."
        is PresenceException.Storage -> "This device could not save the change: ${e.detail}"
        is PresenceException.Internal -> "Something went wrong inside the app: ${e.detail}"
        else -> "Something went wrong: ${e.message ?: e.javaClass.simpleName}"
    }

    /** The engine's latest failure worth showing (`snapshot.lastError`). */
    fun lastError(e: LastError): String = when (e.code) {
        "session_expired" -> "You were signed out. Sign in again."
        "connect_failed", "timeout", "connection_lost" -> "Can't reach the server. Changes are kept and sent when it is back."
        "no_network" -> "No network. Changes are kept and sent when it is back."
        "rate_limited", "http_429" -> "Too many attempts. Wait a moment."
        else -> if (e.code.startsWith("http_5") || e.code == "internal") {
            "The server had a problem. Presence keeps trying."
        } else {
            "The server refused a change: ${e.detail}"
        }
    }

    /** A change the server refused for good, as the outbox row shows it. */
    fun wedged(op: WedgedOp): String {
        val what = when (op.kind) {
            OpKind.SET_STATUS -> "Your status change"
            OpKind.REGISTER_PUSH -> "Notifications for this device"
            OpKind.END_SESSION -> "Signing out"
        }
        return "$what was refused: ${op.detail}"
    }
}
