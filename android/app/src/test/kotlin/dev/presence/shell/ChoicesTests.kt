package dev.presence.shell

import dev.presence.AgentStatus
import dev.presence.Cause
import dev.presence.CustomStatus
import dev.presence.StatusRequest
import dev.presence.StatusSnapshot
import java.time.Instant
import java.time.LocalTime
import java.time.ZoneId
import java.util.Locale
import kotlin.test.assertEquals
import kotlin.test.assertFailsWith
import kotlin.test.assertNull
import kotlin.test.assertTrue
import org.junit.Test

/**
 * The toggle screen's menu, the request each choice sends and the words it shows, on their
 * own: pure functions over the bindings' records, with the device's clock, zone and locale
 * given.
 */
class ChoicesTests {
    private val berlin = ZoneId.of("Europe/Berlin")
    private val newYork = ZoneId.of("America/New_York")
    private val gb = Locale.UK

    private val lunch = CustomStatus(id = "lunch", label = "Lunch", emoji = "🍔", base = AgentStatus.BUSY, defaultDurationMs = 3_600_000)
    private val training = CustomStatus(id = "training", label = "In training", emoji = null, base = AgentStatus.OFFLINE, defaultDurationMs = null)

    private fun at(iso: String): Long = Instant.parse(iso).toEpochMilli()

    private fun shown(
        current: AgentStatus,
        until: Long? = null,
        then: AgentStatus? = null,
        custom: String? = null,
        note: String? = null,
    ) = StatusSnapshot(
        current = current, confirmed = current, version = 3, pending = false, until = until, then = then,
        customStatus = custom, note = note, cause = Cause.MANUAL, changedByAgent = null,
    )

    /** 13:00 in Berlin on a winter Monday. */
    private val noonUtc = FixedDeviceTime(at("2026-12-07T12:00:00Z"), berlin, gb)

    /** Java's CLDR data puts a narrow no-break space before AM/PM; a person reads a space. */
    private fun spaces(s: String) = s.replace('\u202f', ' ').replace('\u00a0', ' ')

    @Test
    fun theMenuOffersBusyAndOfflineForFifteenAndThirtyMinutesAnHourAndUntilATimeThenTheCustomStatuses() {
        val menu = StatusChoices.menu(listOf(lunch, training))
        assertEquals(
            listOf(
                "Online",
                "Busy", "Busy for 15 min", "Busy for 30 min", "Busy for 1 h", "Busy until…",
                "Offline", "Offline for 15 min", "Offline for 30 min", "Offline for 1 h", "Offline until…",
                "🍔 Lunch · Busy for 1 h", "In training · Offline",
            ),
            menu.map { it.label },
        )
        assertEquals(listOf(AgentStatus.BUSY, AgentStatus.OFFLINE), menu.filterIsInstance<Option.AskTime>().map { it.status })
        val sends = menu.filterIsInstance<Option.Send>().map { it.choice }
        assertEquals(Choice.Timed(AgentStatus.BUSY, Span.MINUTES_15), sends[2])
        assertEquals(Choice.Custom(lunch), sends[sends.size - 2])
        assertTrue(sends.none { it is Choice.Timed && it.status == AgentStatus.ONLINE }, "online is never offered with an end")
        assertEquals(11, StatusChoices.menu(emptyList()).size)
    }

    @Test
    fun aTimedChoiceSendsItsDurationAndThenTheStatusBefore() {
        assertEquals(
            StatusRequest(AgentStatus.BUSY, 15 * 60_000L, AgentStatus.ONLINE, null, null),
            StatusChoices.request(Choice.Timed(AgentStatus.BUSY, Span.MINUTES_15), shown(AgentStatus.ONLINE), null, noonUtc),
        )
        assertEquals(
            StatusRequest(AgentStatus.BUSY, 30 * 60_000L, AgentStatus.OFFLINE, null, null),
            StatusChoices.request(Choice.Timed(AgentStatus.BUSY, Span.MINUTES_30), shown(AgentStatus.OFFLINE), null, noonUtc),
        )
        assertEquals(
            StatusRequest(AgentStatus.OFFLINE, 60 * 60_000L, AgentStatus.BUSY, null, null),
            StatusChoices.request(Choice.Timed(AgentStatus.OFFLINE, Span.HOUR_1), shown(AgentStatus.BUSY), null, noonUtc),
        )
        // Before the first snapshot there is no status before: online follows.
        assertEquals(AgentStatus.ONLINE, StatusChoices.request(Choice.Timed(AgentStatus.BUSY, Span.HOUR_1), null, null, noonUtc).then)
    }

    @Test
    fun aTimedChoiceOverATimedStatusThenBecomesWhatThatOneWasGoingToBecome() {
        val timed = shown(AgentStatus.BUSY, until = at("2026-12-07T13:30:00Z"), then = AgentStatus.OFFLINE)
        assertEquals(AgentStatus.OFFLINE, StatusChoices.request(Choice.Timed(AgentStatus.BUSY, Span.MINUTES_15), timed, null, noonUtc).then)
        // Offline over "busy, then offline": the status before is offline itself, so online follows.
        assertEquals(AgentStatus.ONLINE, StatusChoices.request(Choice.Timed(AgentStatus.OFFLINE, Span.MINUTES_15), timed, null, noonUtc).then)
    }

    @Test
    fun busyForAWhileWhenAlreadyBusyThenGoesOnline() {
        val req = StatusChoices.request(Choice.Timed(AgentStatus.BUSY, Span.MINUTES_30), shown(AgentStatus.BUSY), null, noonUtc)
        assertEquals(AgentStatus.ONLINE, req.then)
        assertNull(StatusChoices.request(Choice.Plain(AgentStatus.BUSY), shown(AgentStatus.OFFLINE), null, noonUtc).then, "no end, no then")
    }

    @Test
    fun untilAChosenTimeSendsTheRealTimeLeftToItsNextOccurrenceOnTheDevicesWallClock() {
        // 13:00 in Berlin: 14:30 is today, 90 minutes away.
        val today = StatusChoices.request(Choice.Until(AgentStatus.BUSY, LocalTime.of(14, 30)), shown(AgentStatus.ONLINE), null, noonUtc)
        assertEquals(StatusRequest(AgentStatus.BUSY, 90 * 60_000L, AgentStatus.ONLINE, null, null), today)
        // 12:59 has passed: tomorrow's.
        val tomorrow = StatusChoices.request(Choice.Until(AgentStatus.OFFLINE, LocalTime.of(12, 59)), shown(AgentStatus.ONLINE), null, noonUtc)
        assertEquals((23 * 60 + 59) * 60_000L, tomorrow.durationMs)
        // The same instant is 07:00 in New York: 14:30 there is 7.5 hours away.
        val ny = FixedDeviceTime(noonUtc.now, newYork, Locale.US)
        assertEquals(450 * 60_000L, StatusChoices.request(Choice.Until(AgentStatus.BUSY, LocalTime.of(14, 30)), null, null, ny).durationMs)
        // The current minute itself has begun: it means tomorrow, never a zero-length status.
        assertEquals(86_400_000L, StatusChoices.request(Choice.Until(AgentStatus.BUSY, LocalTime.of(13, 0)), null, null, noonUtc).durationMs)
    }

    @Test
    fun untilATimeAcrossTheNightTheClocksGoBackCountsTheHourTheyRepeat() {
        // Berlin, Saturday 24 October 2026, 22:00 (CEST); at 03:00 the clocks go back to 02:00 (CET).
        val evening = FixedDeviceTime(at("2026-10-24T20:00:00Z"), berlin, gb)
        val req = StatusChoices.request(Choice.Until(AgentStatus.OFFLINE, LocalTime.of(9, 0)), shown(AgentStatus.ONLINE), null, evening)
        assertEquals(12 * 3_600_000L, req.durationMs, "22:00 to 09:00 on the wall clock is 12 real hours that night")
        assertEquals(at("2026-10-25T08:00:00Z"), evening.now + req.durationMs!!)
        // And the night they go forward (29 March 2026): 22:00 to 09:00 is 10 hours.
        val spring = FixedDeviceTime(at("2026-03-28T21:00:00Z"), berlin, gb)
        assertEquals(10 * 3_600_000L, StatusChoices.request(Choice.Until(AgentStatus.BUSY, LocalTime.of(9, 0)), null, null, spring).durationMs)
    }

    @Test
    fun aCustomStatusSendsItsBaseAndIdAndLeavesTheDurationToItsDefault() {
        assertEquals(
            StatusRequest(AgentStatus.BUSY, null, AgentStatus.ONLINE, "lunch", null),
            StatusChoices.request(Choice.Custom(lunch), shown(AgentStatus.ONLINE), null, noonUtc),
        )
        // No default duration: no end, so no then.
        assertEquals(
            StatusRequest(AgentStatus.OFFLINE, null, null, "training", "Back Tuesday"),
            StatusChoices.request(Choice.Custom(training), shown(AgentStatus.ONLINE), "Back Tuesday", noonUtc),
        )
    }

    @Test
    fun theNoteGoesWithTheChoiceTrimmedAndABlankOneIsNone() {
        val req = StatusChoices.request(Choice.Timed(AgentStatus.BUSY, Span.MINUTES_15), shown(AgentStatus.ONLINE), "  At the dentist \n", noonUtc)
        assertEquals("At the dentist", req.note)
        assertNull(StatusChoices.request(Choice.Plain(AgentStatus.ONLINE), null, "   ", noonUtc).note)
        assertNull(StatusChoices.request(Choice.Plain(AgentStatus.ONLINE), null, null, noonUtc).note)
    }

    @Test
    fun aNoteOfMoreThanAHundredCharactersIsRefusedCountingCharactersAsTheServerDoes() {
        // 100 characters that take 200 UTF-16 units still fit.
        val faces = "😀".repeat(100)
        assertEquals(200, faces.length)
        assertEquals(100, StatusChoices.noteLength(faces))
        assertEquals(faces, StatusChoices.request(Choice.Plain(AgentStatus.BUSY), null, faces, noonUtc).note)
        assertEquals("0 characters left", Messages.noteLeft(100))
        assertEquals("87 characters left", Messages.noteLeft(StatusChoices.noteLength("Back at three")))
        val e = assertFailsWith<ChoiceException.NoteTooLong> {
            StatusChoices.request(Choice.Timed(AgentStatus.BUSY, Span.HOUR_1), null, "é".repeat(101), noonUtc)
        }
        assertEquals(101, e.length)
        assertEquals("The note has 101 characters; at most 100 fit.", Messages.error(e))
        assertEquals("The note has 101 characters; at most 100 fit.", Messages.noteLeft(101))
        // Surrounding spaces are not counted.
        assertEquals(100, StatusChoices.noteLength("  " + "a".repeat(100) + "  "))
    }

    @Test
    fun keepingTheStatusWithANewNoteKeepsItsEndWhatFollowsAndItsCustomStatus() {
        val until = at("2026-12-07T13:30:00Z")
        val s = shown(AgentStatus.BUSY, until = until, then = AgentStatus.OFFLINE, custom = "lunch", note = "old")
        val serverNow = at("2026-12-07T12:10:00Z")
        assertEquals(
            StatusRequest(AgentStatus.BUSY, until - serverNow, AgentStatus.OFFLINE, "lunch", "new"),
            StatusChoices.keepWithNote(s, "new", serverNow),
        )
        assertEquals(StatusRequest(AgentStatus.ONLINE, null, null, null, null), StatusChoices.keepWithNote(shown(AgentStatus.ONLINE, note = "x"), "", serverNow))
        assertNull(StatusChoices.keepWithNote(null, "a note", serverNow))
    }

    @Test
    fun theHeadlineSaysTheEndInTheDevicesZoneAndLocaleAndWhatFollows() {
        val until = at("2026-12-07T13:30:00Z")
        assertEquals("Busy until 14:30, then online", Messages.headline(AgentStatus.BUSY, until, AgentStatus.ONLINE, noonUtc))
        assertEquals("Busy until 14:30, then online", Messages.headline(AgentStatus.BUSY, until, AgentStatus.ONLINE, FixedDeviceTime(noonUtc.now, berlin, Locale.GERMANY)))
        // The same instant on a phone in New York, in US English.
        assertEquals(
            "Busy until 8:30 AM, then online",
            spaces(Messages.headline(AgentStatus.BUSY, until, AgentStatus.ONLINE, FixedDeviceTime(noonUtc.now, newYork, Locale.US))),
        )
        // Half-hour zone: Kolkata is UTC+5:30.
        assertEquals("Offline until 19:00, then busy", Messages.headline(AgentStatus.OFFLINE, until, AgentStatus.BUSY, FixedDeviceTime(noonUtc.now, ZoneId.of("Asia/Kolkata"), gb)))
        // In Tokyo it is already 21:00: 22:30 today.
        assertEquals("Busy until 22:30, then online", Messages.headline(AgentStatus.BUSY, until, AgentStatus.ONLINE, FixedDeviceTime(noonUtc.now, ZoneId.of("Asia/Tokyo"), gb)))
        // A few milliseconds either side of the minute still read as that minute.
        assertEquals("Busy until 14:30, then online", Messages.headline(AgentStatus.BUSY, until - 4, AgentStatus.ONLINE, noonUtc))
        assertEquals("Busy until 14:30, then online", Messages.headline(AgentStatus.BUSY, until + 4, AgentStatus.ONLINE, noonUtc))
    }

    @Test
    fun anEndAfterTodaySaysTomorrowOrTheDate() {
        assertEquals("Offline until tomorrow 09:00, then busy", Messages.headline(AgentStatus.OFFLINE, at("2026-12-08T08:00:00Z"), AgentStatus.BUSY, noonUtc))
        assertEquals("Busy until 10 Dec 2026, 09:00, then online", Messages.headline(AgentStatus.BUSY, at("2026-12-10T08:00:00Z"), AgentStatus.ONLINE, noonUtc))
        // 23:30 UTC is already tomorrow in Berlin, still today in New York.
        val late = at("2026-12-07T23:30:00Z")
        assertEquals("Busy until tomorrow 00:30, then online", Messages.headline(AgentStatus.BUSY, late, AgentStatus.ONLINE, noonUtc))
        assertEquals("Busy until 6:30 PM, then online", spaces(Messages.headline(AgentStatus.BUSY, late, AgentStatus.ONLINE, FixedDeviceTime(noonUtc.now, newYork, Locale.US))))
    }

    @Test
    fun aStatusWithNoEndIsJustItsNameAndAThenThatChangesNothingIsNotSaid() {
        assertEquals("Busy", Messages.headline(AgentStatus.BUSY, null, null, noonUtc))
        assertEquals("Online", Messages.headline(AgentStatus.ONLINE, null, AgentStatus.BUSY, noonUtc))
        assertEquals("Online until 14:30", Messages.headline(AgentStatus.ONLINE, at("2026-12-07T13:30:00Z"), AgentStatus.ONLINE, noonUtc))
        assertEquals("Busy until 14:30", Messages.headline(AgentStatus.BUSY, at("2026-12-07T13:30:00Z"), null, noonUtc))
    }

    @Test
    fun theCauseIsSaidOnlyWhenTheAgentDidNotChangeItByHand() {
        assertNull(Messages.cause(Cause.MANUAL))
        assertEquals("Ended by timer", Messages.cause(Cause.TIMER))
        assertEquals("Away (idle)", Messages.cause(Cause.IDLE))
        assertEquals("Back from idle", Messages.cause(Cause.RETURN))
        assertEquals("Set by an admin", Messages.cause(Cause.ADMIN))
    }

    @Test
    fun aCustomStatusIsNamedByItsEmojiAndLabel() {
        assertEquals("🍔 Lunch", Messages.custom(lunch))
        assertEquals("In training", Messages.custom(training))
        assertEquals("In training", Messages.custom(training.copy(emoji = " ")))
    }

    @Test
    fun lengthsAreSaidInMinutesHoursAndDays() {
        assertEquals("15 min", Messages.duration(15 * 60_000L))
        assertEquals("1 h", Messages.duration(3_600_000L))
        assertEquals("1 h 30 min", Messages.duration(90 * 60_000L))
        assertEquals("1 day", Messages.duration(86_400_000L))
        assertEquals("7 days", Messages.duration(7 * 86_400_000L))
        assertEquals("30 s", Messages.duration(30_000L))
    }
}
