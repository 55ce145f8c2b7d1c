package dev.presence.tests

import dev.presence.AgentStatus
import dev.presence.Cause
import dev.presence.PresenceEngine
import dev.presence.PresenceException
import dev.presence.SessionState
import dev.presence.StatusRequest
import dev.presence.testing.*
import kotlin.test.assertEquals
import kotlin.test.assertFailsWith
import kotlin.test.assertNotNull
import kotlin.test.assertTrue
import kotlinx.coroutines.runBlocking
import org.junit.AfterClass
import org.junit.BeforeClass
import org.junit.Test

/**
 * Timed statuses, custom statuses, notes, activity reports and the status log through the
 * generated Kotlin bindings and the [PresenceEngine] wrapper, against the real server.
 */
class TimedStatusTests {
    companion object {
        lateinit var server: TestServer

        @BeforeClass @JvmStatic
        fun startServer() {
            server = TestServer.start()
        }

        @AfterClass @JvmStatic
        fun stopServer() {
            server.close()
        }

        const val CUSTOM = """[{"id":"lunch","label":"Lunch","emoji":"🥪","base":"busy","default_duration_ms":3600000}]"""
    }

    private suspend fun loggedIn(creds: Credentials): PresenceEngine {
        val engine = openEngine(server.url)
        engine.login(creds.account, creds.email, creds.password)
        engine.awaitSnapshot { it.session.state == SessionState.ACTIVE && it.status != null }
        return engine
    }

    @Test
    fun setStatusWithADurationShowsItsEndAndEveryFieldOnceConfirmed(): Unit = runBlocking {
        val creds = server.createAccount()
        val (code, body) = server.send("PUT", "/v1/admin/custom-statuses", CUSTOM, server.ownerToken(creds))
        assertEquals(200, code, body)
        loggedIn(creds).use { engine ->
            engine.refresh()
            val listed = engine.awaitSnapshot { it.customStatuses.isNotEmpty() }.customStatuses
            assertEquals("lunch", listed[0].id)
            assertEquals("Lunch", listed[0].label)
            assertEquals("🥪", listed[0].emoji)
            assertEquals(AgentStatus.BUSY, listed[0].base)
            assertEquals(3_600_000L, listed[0].defaultDurationMs)

            val before = engine.serverTimeNow()
            engine.setStatusWith(
                StatusRequest(
                    status = AgentStatus.BUSY,
                    durationMs = 600_000L,
                    then = AgentStatus.ONLINE,
                    customStatus = "lunch",
                    note = "back soon",
                ),
            )
            // Stored: shown at once, ending ten minutes after it was chosen.
            val shown = assertNotNull(engine.snapshot.status)
            assertEquals(AgentStatus.BUSY, shown.current)
            val until = assertNotNull(shown.until)
            assertTrue(until - 600_000L >= before - 1, "until $until, chosen after $before")

            val s = engine.awaitSnapshot { it.status?.pending == false && it.status?.confirmed == AgentStatus.BUSY }
            val st = assertNotNull(s.status)
            assertEquals(until, st.until)
            assertEquals(AgentStatus.ONLINE, st.then)
            assertEquals("lunch", st.customStatus)
            assertEquals("back soon", st.note)
            assertEquals(Cause.MANUAL, st.cause)
            assertEquals(null, st.changedByAgent)
            // The chat box says when the team is back.
            val back = engine.awaitSnapshot { it.chatbox?.backAt != null }
            assertEquals(until, back.chatbox?.backAt)
        }
    }

    @Test
    fun aTimedStatusEndsWithCauseTimer(): Unit = runBlocking {
        val creds = server.createAccount()
        loggedIn(creds).use { engine ->
            engine.setStatusWith(StatusRequest(status = AgentStatus.BUSY, durationMs = 1_000L, then = AgentStatus.ONLINE))
            val s = engine.awaitSnapshot { it.status?.cause == Cause.TIMER }
            assertEquals(AgentStatus.ONLINE, s.status?.current)
            assertEquals(null, s.status?.until)
        }
    }

    @Test
    fun aDurationOutOfBoundsThrowsInvalidInputNamingTheField(): Unit = runBlocking {
        val creds = server.createAccount()
        loggedIn(creds).use { engine ->
            val e = assertFailsWith<PresenceException.InvalidInput> {
                engine.setStatusWith(StatusRequest(status = AgentStatus.BUSY, durationMs = 10L))
            }
            assertTrue(e.detail.startsWith("duration_ms"), e.detail)
            assertEquals(0u, engine.snapshot.outbox.pending)
            val l = assertFailsWith<PresenceException.InvalidInput> { engine.statusLog(limit = 0) }
            assertTrue(l.detail.startsWith("limit"), l.detail)
        }
    }

    @Test
    fun anUnknownCustomStatusIsWedgedNamingTheField(): Unit = runBlocking {
        val creds = server.createAccount()
        loggedIn(creds).use { engine ->
            engine.setStatusWith(StatusRequest(status = AgentStatus.BUSY, customStatus = "nap"))
            val s = engine.awaitSnapshot { it.outbox.wedged.isNotEmpty() }
            assertEquals("invalid_field", s.outbox.wedged[0].code)
            assertTrue("custom_status" in s.outbox.wedged[0].detail, s.outbox.wedged[0].detail)
        }
    }

    @Test
    fun reportIdleReachesTheServerWithTheNextHeartbeat(): Unit = runBlocking {
        val creds = server.createAccount()
        loggedIn(creds).use { engine ->
            engine.reportIdle(120_000L)
            engine.backgroundRefresh(10_000L)
            // Only the engine's session reports activity; the owner's HTTP login does not.
            val (code, me) = server.send("GET", "/v1/me", "", server.ownerToken(creds))
            assertEquals(200, code, me)
            val idle = Regex(""""idle_ms"\s*:\s*(\d+)""").find(me)?.groupValues?.get(1)?.toLong()
            assertNotNull(idle, me)
            assertTrue(idle in 120_000L..130_000L, me)
            engine.reportIdle(null)
        }
    }

    @Test
    fun theStatusLogListsChangesNewestFirst(): Unit = runBlocking {
        val creds = server.createAccount()
        loggedIn(creds).use { engine ->
            for ((i, status) in listOf(AgentStatus.ONLINE, AgentStatus.BUSY).withIndex()) {
                engine.setStatusWith(StatusRequest(status = status, note = "change $i"))
                engine.awaitSnapshot { it.outbox.pending == 0u && it.status?.pending == false }
            }
            val page = engine.statusLog(limit = 1)
            assertEquals(1, page.entries.size)
            assertEquals("change 1", page.entries[0].note)
            assertEquals(AgentStatus.BUSY, page.entries[0].status)
            assertEquals(Cause.MANUAL, page.entries[0].cause)
            val next = assertNotNull(page.next)
            val older = engine.statusLog(limit = 1, after = next)
            assertEquals("change 0", older.entries[0].note)
            assertTrue(older.entries[0].appliedAt <= page.entries[0].appliedAt)
        }
    }
}
