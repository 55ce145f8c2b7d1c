package dev.presence.shell

import dev.presence.AgentStatus
import dev.presence.Cause
import dev.presence.ChatboxStatus
import dev.presence.Connection
import dev.presence.CustomStatus
import dev.presence.LastError
import dev.presence.OpKind
import dev.presence.PresenceException
import dev.presence.Reason
import dev.presence.WedgedOp
import java.time.Instant
import java.time.format.DateTimeFormatter
import java.time.format.FormatStyle

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

    /** A status inside a sentence ("then online"). */
    fun statusWord(s: AgentStatus): String = status(s).lowercase(java.util.Locale.ROOT)

    /**
     * The status line: "Busy", or "Busy until 14:30, then online" for a timed one. [untilMs]
     * is on the device's clock; the time is said in the device's zone and locale (with
     * "tomorrow" or the date when it is not today). No "then" when it is the same status.
     */
    fun headline(status: AgentStatus, untilMs: Long?, then: AgentStatus?, time: DeviceTime): String {
        if (untilMs == null) return status(status)
        val after = then?.takeIf { it != status }?.let { ", then ${statusWord(it)}" } ?: ""
        return "${status(status)} until ${clock(untilMs, time)}$after"
    }

    /**
     * An instant as the device says it, to the nearest minute: "14:30", "tomorrow 09:00", or
     * "9 Dec 2026, 09:00". (An end chosen as 14:30 arrives a few milliseconds either side of
     * it after the trip through the server's clock; it still reads 14:30.)
     */
    fun clock(atMs: Long, time: DeviceTime): String {
        val zone = time.zone()
        val locale = time.locale()
        val at = Instant.ofEpochMilli(Math.floorDiv(atMs + 30_000, 60_000) * 60_000).atZone(zone)
        val today = Instant.ofEpochMilli(time.nowMs()).atZone(zone).toLocalDate()
        val hm = DateTimeFormatter.ofLocalizedTime(FormatStyle.SHORT).withLocale(locale).format(at)
        return when (at.toLocalDate()) {
            today -> hm
            today.plusDays(1) -> "tomorrow $hm"
            else -> DateTimeFormatter.ofLocalizedDate(FormatStyle.MEDIUM).withLocale(locale).format(at) + ", " + hm
        }
    }

    /** A length of time: "15 min", "1 h", "1 h 30 min", "2 days". */
    fun duration(ms: Long): String {
        val min = ms / 60_000
        return when {
            ms < 60_000 -> "${ms / 1_000} s"
            min < 60 -> "$min min"
            min % (24 * 60) == 0L -> (min / (24 * 60)).let { if (it == 1L) "1 day" else "$it days" }
            min % 60 == 0L -> "${min / 60} h"
            else -> "${min / 60} h ${min % 60} min"
        }
    }

    /** The menu row of a status for a fixed length: "Busy for 15 min". */
    fun forSpan(s: AgentStatus, ms: Long): String = "${status(s)} for ${duration(ms)}"

    /** The menu row that asks for a time: "Busy until…". */
    fun untilAsk(s: AgentStatus): String = "${status(s)} until…"

    /** A custom status as the screen names it: its emoji (if any) and its label. */
    fun custom(c: CustomStatus): String = listOfNotNull(c.emoji?.takeIf { it.isNotBlank() }, c.label).joinToString(" ")

    /** A custom status's menu row: "🍔 Lunch · Busy for 1 h". */
    fun customOption(c: CustomStatus): String =
        custom(c) + " · " + (c.defaultDurationMs?.let { forSpan(c.base, it) } ?: status(c.base))

    /** Why the status last changed, when the agent did not change it by hand (else null). */
    fun cause(c: Cause): String? = when (c) {
        Cause.MANUAL -> null
        Cause.ADMIN -> "Set by an admin"
        Cause.TIMER -> "Ended by timer"
        Cause.IDLE -> "Away (idle)"
        Cause.RETURN -> "Back from idle"
    }

    /** What is left of the note's length: "88 characters left", or why it cannot be sent. */
    fun noteLeft(length: Int): String {
        val left = StatusChoices.NOTE_MAX - length
        return if (left >= 0) "$left characters left" else noteTooLong(length)
    }

    fun noteTooLong(length: Int): String = "The note has $length characters; at most ${StatusChoices.NOTE_MAX} fit."

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
        is ChoiceException.NoteTooLong -> noteTooLong(e.length)
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
