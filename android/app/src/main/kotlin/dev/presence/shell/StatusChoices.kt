package dev.presence.shell

import dev.presence.AgentStatus
import dev.presence.CustomStatus
import dev.presence.StatusRequest
import dev.presence.StatusSnapshot
import java.time.Instant
import java.time.LocalTime
import java.time.ZoneId
import java.time.ZonedDateTime
import java.util.Locale

/**
 * What the toggle screen offers and exactly what each choice sends. Pure: no engine and no
 * clock of its own (the device's time, zone and locale come in as a [DeviceTime]), so every
 * request is pinned by tests on a plain JVM.
 *
 * Guarantees:
 * - Online, busy and offline are offered as they are; busy and offline also for 15 min,
 *   30 min, 1 h and until a chosen time; then the account's custom statuses, in the
 *   account's order. Online is never offered with an end.
 * - A timed choice sends the `then` the screen shows, so what the agent read is what
 *   happens: the status before (the shown status, or, when that one is timed, what it was
 *   going to become), or online when the status before is the chosen one.
 * - "Until 14:30" is the next 14:30 on the device's wall clock in its zone: today if it is
 *   still ahead, else tomorrow. The duration sent is the real time to that instant, so a
 *   night with a daylight-saving change counts its 23 or 25 hours.
 * - A custom status sends its base status and its id and no duration: the server applies the
 *   custom status's default duration (and `then`, as above, goes with it when it has one).
 * - The note is trimmed; blank means none; more than [NOTE_MAX] characters (Unicode code
 *   points, as the server counts them) is refused with [ChoiceException.NoteTooLong] before
 *   anything is stored.
 */
object StatusChoices {
    /** The longest note, in characters (code points). */
    const val NOTE_MAX = 100

    /** The statuses offered with an end. */
    val TIMED: List<AgentStatus> = listOf(AgentStatus.BUSY, AgentStatus.OFFLINE)

    /** The rows of the status menu, in order. */
    fun menu(custom: List<CustomStatus>): List<Option> = buildList {
        for (s in AgentStatus.entries) {
            add(Option.Send(Messages.status(s), Choice.Plain(s)))
            if (s in TIMED) {
                for (span in Span.entries) add(Option.Send(Messages.forSpan(s, span.durationMs), Choice.Timed(s, span)))
                add(Option.AskTime(Messages.untilAsk(s), s))
            }
        }
        for (c in custom) add(Option.Send(Messages.customOption(c), Choice.Custom(c)))
    }

    /**
     * The request [choice] sends, with the note [note], on top of the status the screen
     * shows ([shown], null before the first snapshot). Throws [ChoiceException] for a note
     * that is too long.
     */
    fun request(choice: Choice, shown: StatusSnapshot?, note: String?, time: DeviceTime): StatusRequest {
        val n = checkNote(note)
        return when (choice) {
            is Choice.Plain -> StatusRequest(choice.status, null, null, null, n)
            is Choice.Timed -> StatusRequest(choice.status, choice.span.durationMs, thenAfter(choice.status, shown), null, n)
            is Choice.Until -> {
                val now = time.nowMs()
                val at = nextOccurrence(choice.time, now, time.zone())
                StatusRequest(choice.status, at - now, thenAfter(choice.status, shown), null, n)
            }
            is Choice.Custom -> {
                val c = choice.custom
                val then = if (c.defaultDurationMs != null) thenAfter(c.base, shown) else null
                StatusRequest(c.base, null, then, c.id, n)
            }
        }
    }

    /**
     * The request that keeps the shown status as it is (its end, what follows, its custom
     * status) and changes only its note. Null when there is no status to keep.
     */
    fun keepWithNote(shown: StatusSnapshot?, note: String?, serverNowMs: Long): StatusRequest? {
        val s = shown ?: return null
        val n = checkNote(note)
        // The end stays where it is: the engine stamps the op now, so the time left is the duration.
        val left = s.until?.let { maxOf(it - serverNowMs, MIN_DURATION_MS) }
        return StatusRequest(s.current, left, if (left != null) s.then else null, s.customStatus, n)
    }

    /** The shortest duration the server takes. */
    const val MIN_DURATION_MS = 1_000L

    /** The note as it is sent: trimmed, null when blank. Throws when it is too long. */
    fun checkNote(note: String?): String? {
        val t = note?.trim()?.takeIf { it.isNotEmpty() } ?: return null
        val n = noteLength(t)
        if (n > NOTE_MAX) throw ChoiceException.NoteTooLong(n)
        return t
    }

    /** A note's length as the server counts it (code points, not UTF-16 units). */
    fun noteLength(note: String): Int {
        val t = note.trim()
        return t.codePointCount(0, t.length)
    }

    /**
     * What a timed [chosen] status becomes at its end by default: the status before it, or
     * online when that is [chosen] itself (null for a timed online over online: the server's
     * default, online again).
     */
    fun thenAfter(chosen: AgentStatus, shown: StatusSnapshot?): AgentStatus? {
        val before = shown?.let { if (it.until != null) it.then ?: it.current else it.current } ?: AgentStatus.ONLINE
        return when {
            before != chosen -> before
            chosen != AgentStatus.ONLINE -> AgentStatus.ONLINE
            else -> null
        }
    }

    /** The next instant (epoch ms) after [nowMs] at which the wall clock in [zone] reads [at]. */
    fun nextOccurrence(at: LocalTime, nowMs: Long, zone: ZoneId): Long {
        val now = Instant.ofEpochMilli(nowMs).atZone(zone)
        var day = now.toLocalDate()
        while (true) {
            // In a spring-forward gap (02:30 that never happens) this is the time after the gap.
            val t = ZonedDateTime.of(day, at, zone).toInstant().toEpochMilli()
            if (t - nowMs >= MIN_DURATION_MS) return t
            day = day.plusDays(1)
        }
    }
}

/** The fixed lengths offered for busy and offline. */
enum class Span(val durationMs: Long) {
    MINUTES_15(15 * 60_000L),
    MINUTES_30(30 * 60_000L),
    HOUR_1(60 * 60_000L),
}

/** One thing the agent can choose on the toggle screen. */
sealed interface Choice {
    /** This status, with no end. */
    data class Plain(val status: AgentStatus) : Choice

    /** This status for a fixed length. */
    data class Timed(val status: AgentStatus, val span: Span) : Choice

    /** This status until the next [time] on the device's wall clock. */
    data class Until(val status: AgentStatus, val time: LocalTime) : Choice

    /** One of the account's custom statuses. */
    data class Custom(val custom: CustomStatus) : Choice
}

/** A row of the status menu. */
sealed interface Option {
    val label: String

    /** Tapping sends [choice]. */
    data class Send(override val label: String, val choice: Choice) : Option

    /** Tapping asks for a time of day, then sends `Choice.Until(status, time)`. */
    data class AskTime(override val label: String, val status: AgentStatus) : Option
}

/** A choice refused on the device, before anything is stored. */
sealed class ChoiceException(text: String) : Exception(text) {
    /** The note has [length] characters, more than [StatusChoices.NOTE_MAX]. */
    class NoteTooLong(val length: Int) : ChoiceException("note of $length characters, at most ${StatusChoices.NOTE_MAX}")
}

/**
 * The device's clock, time zone and locale, read each time they are needed (the person may
 * travel, or change the phone's language, while the app runs).
 */
interface DeviceTime {
    fun nowMs(): Long
    fun zone(): ZoneId
    fun locale(): Locale

    /** The device's own. */
    object System : DeviceTime {
        override fun nowMs(): Long = java.lang.System.currentTimeMillis()
        override fun zone(): ZoneId = ZoneId.systemDefault()
        override fun locale(): Locale = Locale.getDefault()
    }
}

/** The device's clock in a given zone and locale (tests; a per-app language setting). */
class ZonedDeviceTime(private val zone: ZoneId, private val locale: Locale) : DeviceTime {
    override fun nowMs(): Long = java.lang.System.currentTimeMillis()
    override fun zone(): ZoneId = zone
    override fun locale(): Locale = locale
}
