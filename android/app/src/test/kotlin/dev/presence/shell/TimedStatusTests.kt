package dev.presence.shell

import dev.presence.AgentStatus
import dev.presence.StatusRequest
import dev.presence.testing.TestServer
import java.time.Instant
import java.time.LocalTime
import java.time.ZoneId
import java.util.Locale
import kotlin.test.assertEquals
import kotlin.test.assertFalse
import kotlin.test.assertNotNull
import kotlin.test.assertNull
import kotlin.test.assertTrue
import kotlinx.coroutines.runBlocking
import org.junit.AfterClass
import org.junit.BeforeClass
import org.junit.Test

/**
 * The toggle screen's timed statuses, custom statuses and notes over the real library and
 * the real server: what a choice on one phone makes the server hold, and what another phone
 * then shows.
 */
class TimedStatusTests {
    companion object {
        lateinit var server: TestServer

        @BeforeClass @JvmStatic
        fun startServer() {
            server = TestServer()
        }

        @AfterClass @JvmStatic
        fun stopServer() {
            server.close()
        }

        /** A phone in Berlin, in British English, on the real clock. */
        val berlin = ZonedDeviceTime(ZoneId.of("Europe/Berlin"), Locale.UK)
    }

    /** The agent's status as the server holds it (`GET /v1/me` with another device's token). */
    private fun serverStatus(token: String): Map<String, String> = serverStatusOf(server, token)

    private fun serverStatusOf(server: TestServer, token: String): Map<String, String> {
        val (code, body) = server.send("GET", "/v1/me", "", token)
        check(code == 200) { "GET /v1/me: $code $body" }
        val status = body.substringAfter("\"status\":{").substringBefore("}")
        return Regex(""""([a-z_]+)":("[^"]*"|-?\d+|null)""").findAll(status)
            .associate { it.groupValues[1] to it.groupValues[2].trim('"') }
    }

    @Test
    fun busyForFifteenMinutesEndsFifteenMinutesAfterItsIntentAndShowsItsEndOnAnotherPhone(): Unit = runBlocking {
        val c = server.createAccount()
        val admin = server.ownerToken(c)
        TestShell.signedIn(server, c, "phone", time = berlin).use { phone ->
            TestShell.signedIn(server, c, "tablet", time = berlin).use { tablet ->
                phone.toggle.choose(AgentStatus.ONLINE)
                tablet.awaitState { it.confirmed == AgentStatus.ONLINE }
                assertTrue(phone.toggle.choose(Choice.Timed(AgentStatus.BUSY, Span.MINUTES_15)))
                val seen = tablet.awaitState { it.confirmed == AgentStatus.BUSY && it.headline.startsWith("Busy until") }
                val held = serverStatus(admin)
                assertEquals("busy", held["status"])
                assertEquals("online", held["then"])
                assertEquals(15 * 60_000L, held["until"]!!.toLong() - held["intent_at"]!!.toLong())
                val until = held["until"]!!.toLong()
                val expected = "Busy until ${Messages.clock(until, berlin)}, then online"
                assertEquals(expected, seen.headline)
                assertEquals(expected, phone.awaitState { !it.pending }.headline)
                assertNull(seen.cause, "the agent's own change says no cause")
            }
        }
    }

    @Test
    fun untilAChosenTimeEndsAtThatTimeOnThePhonesClock(): Unit = runBlocking {
        val c = server.createAccount()
        val admin = server.ownerToken(c)
        TestShell.signedIn(server, c, time = berlin).use { phone ->
            phone.toggle.choose(AgentStatus.BUSY)
            phone.awaitState { it.confirmed == AgentStatus.BUSY && !it.pending }
            // Two hours from now, to the minute, on the Berlin wall clock.
            val now = Instant.now().atZone(berlin.zone())
            val chosen = LocalTime.of(now.hour, now.minute).plusHours(2)
            assertTrue(phone.toggle.chooseUntil(AgentStatus.OFFLINE, chosen))
            val shown = phone.awaitState { it.confirmed == AgentStatus.OFFLINE && !it.pending }
            val target = StatusChoices.nextOccurrence(chosen, System.currentTimeMillis(), berlin.zone())
            val until = serverStatus(admin)["until"]!!.toLong()
            // One clock on both sides here: only the trip from tap to stamp (and the engine's
            // estimate of the server's clock) lies between.
            assertTrue(until - target in -1_000..5_000, "until $until, chosen $target")
            assertEquals("busy", serverStatus(admin)["then"], "the status before follows")
            assertEquals("Offline until ${Messages.clock(target, berlin)}, then busy", shown.headline)
            assertTrue(shown.headline.contains("%02d:%02d".format(chosen.hour, chosen.minute)), shown.headline)
        }
    }

    @Test
    fun aCustomStatusWithANoteShowsItsEmojiLabelAndNoteOnAnotherPhone(): Unit = runBlocking {
        val c = server.createAccount()
        val admin = server.ownerToken(c)
        val (code, body) = server.send(
            "PUT", "/v1/admin/custom-statuses",
            """[{"id":"lunch","label":"Lunch","emoji":"🍔","base":"busy","default_duration_ms":3600000},""" +
                """{"id":"training","label":"In training","emoji":null,"base":"offline","default_duration_ms":null}]""",
            admin,
        )
        assertEquals(200, code, body)
        TestShell.signedIn(server, c, "phone", time = berlin).use { phone ->
            TestShell.signedIn(server, c, "tablet", time = berlin).use { tablet ->
                phone.toggle.choose(AgentStatus.ONLINE)
                tablet.awaitState { it.confirmed == AgentStatus.ONLINE }
                val menu = phone.awaitState { s -> s.options.any { it.label.startsWith("🍔 Lunch") } }.options
                assertEquals(listOf("🍔 Lunch · Busy for 1 h", "In training · Offline"), menu.takeLast(2).map { it.label })
                phone.toggle.editNote("  At the dentist  ")
                assertEquals("86 characters left", phone.toggle.current().noteLeft)
                val lunch = (menu[menu.size - 2] as Option.Send).choice
                assertTrue(phone.toggle.choose(lunch))
                assertEquals("", phone.toggle.current().noteDraft, "the note went with the choice")
                val seen = tablet.awaitState { it.custom != null }
                assertEquals("🍔 Lunch", seen.custom)
                assertEquals("At the dentist", seen.note)
                assertTrue(seen.headline.startsWith("Busy until ") && seen.headline.endsWith(", then online"), seen.headline)
                val held = serverStatus(admin)
                assertEquals("lunch", held["custom_status"])
                assertEquals(3_600_000L, held["until"]!!.toLong() - held["intent_at"]!!.toLong(), "the custom status's default length")
            }
        }
    }

    @Test
    fun aNoteTooLongIsRefusedOnThePhoneAndNothingIsQueued(): Unit = runBlocking {
        val c = server.createAccount()
        TestShell.signedIn(server, c, time = berlin).use { phone ->
            val before = phone.toggle.current()
            phone.toggle.editNote("x".repeat(101))
            val typed = phone.toggle.current()
            assertTrue(typed.noteTooLong)
            assertEquals("The note has 101 characters; at most 100 fit.", typed.noteLeft)
            assertFalse(phone.toggle.choose(Choice.Timed(AgentStatus.BUSY, Span.MINUTES_15)))
            val refused = phone.toggle.current()
            assertEquals("The note has 101 characters; at most 100 fit.", refused.error)
            assertEquals(0, refused.waiting)
            assertEquals(before.wanted, refused.wanted)
            assertEquals("x".repeat(101), refused.noteDraft, "the note is kept for editing")
            phone.toggle.editNote("x".repeat(100))
            assertFalse(phone.toggle.current().noteTooLong)
            assertTrue(phone.toggle.choose(Choice.Timed(AgentStatus.BUSY, Span.MINUTES_15)))
            assertEquals("x".repeat(100), phone.awaitState { it.confirmed == AgentStatus.BUSY && !it.pending }.note)
        }
    }

    @Test
    fun theEndOfATimedStatusSaysEndedByTimer(): Unit = runBlocking {
        val c = server.createAccount()
        TestShell.signedIn(server, c, time = berlin).use { phone ->
            // The menu's shortest is 15 minutes; the engine takes any length the server does.
            phone.engine.setStatusWith(StatusRequest(AgentStatus.BUSY, 1_500, AgentStatus.ONLINE, null, "brb"))
            val timed = phone.awaitState { it.confirmed == AgentStatus.BUSY && !it.pending }
            assertTrue(timed.headline.startsWith("Busy until "), timed.headline)
            val ended = phone.awaitState { it.confirmed == AgentStatus.ONLINE }
            assertEquals("Ended by timer", ended.cause)
            assertEquals("Online", ended.headline)
            assertNull(ended.note)
        }
    }

    @Test
    fun anAdminsChangeSaysSetByAnAdmin(): Unit = runBlocking {
        val c = server.createAccount()
        val admin = server.ownerToken(c)
        TestShell.signedIn(server, c, time = berlin).use { phone ->
            phone.toggle.choose(AgentStatus.ONLINE)
            phone.awaitState { it.confirmed == AgentStatus.ONLINE && !it.pending }
            val id = phone.engine.snapshot.session.agent!!.id
            val (code, body) = server.send("PUT", "/v1/admin/agents/$id/status", """{"status":"offline","note":"Covering the phones"}""", admin)
            assertEquals(200, code, body)
            val seen = phone.awaitState { it.confirmed == AgentStatus.OFFLINE }
            assertEquals("Set by an admin", seen.cause)
            assertEquals("Covering the phones", seen.note)
            assertEquals("Offline", seen.headline)
            // The agent's own next change says no cause.
            phone.toggle.choose(AgentStatus.BUSY)
            assertNull(phone.awaitState { it.confirmed == AgentStatus.BUSY && !it.pending }.cause)
        }
    }

    @Test
    fun savingANoteKeepsTheTimedStatusItsEndAndWhatFollows(): Unit = runBlocking {
        val c = server.createAccount()
        val admin = server.ownerToken(c)
        TestShell.signedIn(server, c, time = berlin).use { phone ->
            phone.toggle.choose(AgentStatus.OFFLINE)
            phone.awaitState { it.confirmed == AgentStatus.OFFLINE && !it.pending }
            phone.toggle.choose(Choice.Timed(AgentStatus.BUSY, Span.MINUTES_30))
            val timed = phone.awaitState { it.confirmed == AgentStatus.BUSY && !it.pending }
            val first = serverStatus(admin)
            phone.toggle.editNote("On a call with Acme")
            assertTrue(phone.toggle.saveNote())
            val noted = phone.awaitState { it.note == "On a call with Acme" && !it.pending }
            val second = serverStatus(admin)
            assertTrue(second["version"]!!.toLong() > first["version"]!!.toLong())
            assertEquals("busy", second["status"])
            assertEquals("offline", second["then"])
            val moved = second["until"]!!.toLong() - first["until"]!!.toLong()
            assertTrue(moved in 0..5_000, "the end moved by $moved ms")
            assertEquals(timed.headline, noted.headline)
        }
    }

    @Test
    fun anIdleChangeSaysAwayIdleAndActivitySaysBackFromIdle(): Unit = runBlocking {
        val c = server.createAccount()
        // The owner's own session stands in for a desktop app that reports idle time.
        val desktop = server.ownerToken(c)
        val (code, body) = server.send("PUT", "/v1/admin/settings", """{"idle_after_ms":1000,"idle_status":"busy","return_on_activity":true}""", desktop)
        assertEquals(200, code, body)
        val (set, setBody) = server.send("PUT", "/v1/me/status", """{"status":"online","op_id":"${java.util.UUID.randomUUID()}"}""", desktop)
        assertEquals(200, set, setBody)
        // No input for 5 s, with 1 s allowed: the server makes the agent busy at once.
        val (hb, hbBody) = server.send("POST", "/v1/session/heartbeat", """{"mode":"active","idle_ms":5000}""", desktop)
        assertEquals(200, hb, hbBody)
        // The phone signs in afterwards (a live phone reports no idle time, so it would keep the agent active).
        TestShell.signedIn(server, c, time = berlin).use { phone ->
            val away = phone.awaitState { it.confirmed == AgentStatus.BUSY }
            assertEquals("Away (idle)", away.cause)
            assertEquals("Busy", away.headline)
            val (back, backBody) = server.send("POST", "/v1/session/heartbeat", """{"mode":"active","idle_ms":0}""", desktop)
            assertEquals(200, back, backBody)
            val returned = phone.awaitState { it.confirmed == AgentStatus.ONLINE }
            assertEquals("Back from idle", returned.cause)
        }
    }

    @Test
    fun aTimedChoiceMadeOfflineShowsItsEndAtOnceAndKeepsItExactly(): Unit = runBlocking {
        TestServer().use { own ->
            val c = own.createAccount()
            TestShell.signedIn(own, c, time = berlin).use { phone ->
                phone.toggle.choose(AgentStatus.ONLINE)
                phone.awaitState { it.confirmed == AgentStatus.ONLINE && !it.pending }
                own.stop()
                assertTrue(phone.toggle.choose(Choice.Timed(AgentStatus.BUSY, Span.MINUTES_15)), "storing must not need the server")
                val queued = phone.toggle.current()
                assertTrue(queued.pending)
                val until = assertNotNull(phone.engine.snapshot.status?.until, "the pending change's end is known on the phone")
                assertEquals("Busy until ${Messages.clock(until, berlin)}, then online", queued.headline)
                phone.awaitState { it.connectionState == dev.presence.Connection.OFFLINE }
                own.start()
                val delivered = phone.awaitState(20_000) { it.confirmed == AgentStatus.BUSY && it.waiting == 0 && !it.pending }
                assertEquals(queued.headline, delivered.headline)
                // The end counts from the tap, not from the delivery.
                assertEquals(until, serverStatusOf(own, own.ownerToken(c))["until"]!!.toLong())
            }
        }
    }
}
