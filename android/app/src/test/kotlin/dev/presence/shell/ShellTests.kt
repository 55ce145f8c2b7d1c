package dev.presence.shell

import dev.presence.AgentStatus
import dev.presence.Connection
import dev.presence.PushProvider
import kotlin.test.assertEquals
import kotlin.test.assertFalse
import kotlin.test.assertNotNull
import kotlin.test.assertNull
import kotlin.test.assertTrue
import kotlinx.coroutines.flow.first
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeoutOrNull
import org.junit.AfterClass
import org.junit.BeforeClass
import org.junit.Test
import dev.presence.testing.*

/**
 * The platform-free Android shell (view model, push router, lifecycle policy, push-token
 * registration) over the real libpresence_ffi and the real presence-server.
 */
class ShellTests {
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
    }

    @Test
    fun theToggleOnOneDeviceShowsOnAnother(): Unit = runBlocking {
        val c = server.createAccount()
        TestShell.signedIn(server, c, "phone").use { phone ->
            TestShell.signedIn(server, c, "tablet").use { tablet ->
                assertTrue(phone.toggle.choose(AgentStatus.BUSY))
                val seen = tablet.awaitState { it.confirmed == AgentStatus.BUSY }
                assertEquals(AgentStatus.BUSY, seen.wanted)
                assertFalse(seen.pending)
                assertEquals("Busy", Messages.status(seen.wanted!!))
            }
        }
    }

    @Test
    fun aChoiceShowsAtOnceAsWantedThenAsConfirmed(): Unit = runBlocking {
        val c = server.createAccount()
        TestShell.signedIn(server, c).use { phone ->
            phone.toggle.choose(AgentStatus.ONLINE)
            val now = phone.toggle.current()
            assertEquals(AgentStatus.ONLINE, now.wanted)
            val done = phone.awaitState { it.confirmed == AgentStatus.ONLINE && !it.pending }
            assertEquals(0, done.waiting)
            assertEquals("Connected", done.connection)
        }
    }

    @Test
    fun theChatBoxLineShowsStatusReasonAndTheTeamsMessage(): Unit = runBlocking {
        val c = server.createAccount()
        val (code, body) = server.send("PUT", "/v1/admin/settings", """{"busy_message":"Back in 5 minutes"}""", server.ownerToken(c))
        assertEquals(200, code, body)
        TestShell.signedIn(server, c).use { phone ->
            phone.toggle.choose(AgentStatus.ONLINE)
            val online = phone.awaitState { it.chatbox?.text == "Chat is online" }
            assertEquals("an agent is online", online.chatbox?.reason)
            phone.toggle.choose(AgentStatus.BUSY)
            val busy = phone.awaitState { it.chatbox?.text == "Chat is busy" }
            assertEquals("agents are busy", busy.chatbox?.reason)
            assertEquals("Back in 5 minutes", busy.chatbox?.message)
        }
    }

    @Test
    fun aChangeMadeWhileOfflineIsKeptAndDelivered(): Unit = runBlocking {
        TestServer().use { own ->
            val c = own.createAccount()
            TestShell.signedIn(own, c).use { phone ->
                own.stop()
                assertTrue(phone.toggle.choose(AgentStatus.BUSY), "storing must not need the server")
                val queued = phone.toggle.current()
                assertEquals(AgentStatus.BUSY, queued.wanted)
                assertTrue(queued.pending)
                assertEquals(1, queued.waiting)
                val unreachable = phone.awaitState { it.connectionState == Connection.OFFLINE }
                assertEquals("Can't reach the server", unreachable.connection)
                own.start()
                val delivered = phone.awaitState(20_000) { it.confirmed == AgentStatus.BUSY && it.waiting == 0 }
                assertFalse(delivered.pending)
            }
            TestShell.signedIn(own, c, "tablet").use { tablet ->
                tablet.awaitState { it.confirmed == AgentStatus.BUSY }
            }
        }
    }

    @Test
    fun aWedgedChangeCanBeRetriedOnceTheCauseIsFixed(): Unit = runBlocking {
        // A server that may not call webhooks: it refuses the registration for good (422).
        TestServer(flags = emptyList()).use { own ->
            val c = own.createAccount()
            PushReceiver().use { receiver ->
                TestShell.signedIn(own, c).use { phone ->
                    assertTrue(phone.registration.onNewToken(PushProvider.WEBHOOK, receiver.url))
                    val wedged = phone.awaitState { it.wedged.isNotEmpty() }
                    val row = wedged.wedged.single()
                    assertTrue(row.text.startsWith("Notifications for this device was refused"), row.text)
                    assertNotNull(wedged.error)
                    // The operator allows loopback webhooks; the user taps Retry.
                    own.stop()
                    own.start(WEBHOOK_ALLOWED)
                    assertTrue(phone.toggle.retry(row.opId))
                    phone.awaitState(20_000) { it.wedged.isEmpty() && it.waiting == 0 }
                }
            }
        }
    }

    @Test
    fun aWedgedChangeCanBeDiscarded(): Unit = runBlocking {
        val c = server.createAccount()
        TestShell.signedIn(server, c).use { phone ->
            // This server has no FCM credentials: it refuses the provider (422, field provider).
            phone.registration.onNewToken(PushProvider.FCM, "fcm-registration-token")
            val wedged = phone.awaitState { it.wedged.isNotEmpty() }.wedged.single()
            assertTrue(wedged.text.contains("provider"), wedged.text)
            assertTrue(phone.toggle.discard(wedged.opId))
            val after = phone.awaitState { it.wedged.isEmpty() }
            assertEquals(0, after.waiting)
        }
    }

    @Test
    fun aStatusPushUpdatesTheView(): Unit = runBlocking {
        val c = server.createAccount()
        TestShell.signedIn(server, c).use { phone ->
            phone.policy.onBackground()
            val s = phone.engine.snapshot
            val outcome = phone.push.onFcmMessage(mapOf("presence" to statusPush(s.session.sessionId!!, "busy", s.status!!.version + 1)))
            assertEquals(PushOutcome.Applied("status"), outcome)
            assertEquals(AgentStatus.BUSY, phone.awaitState { it.confirmed == AgentStatus.BUSY }.wanted)
            assertEquals(outcome, phone.push.lastOutcome.value)
        }
    }

    @Test
    fun aRenewPushIsAnsweredWithOneHeartbeat(): Unit = runBlocking {
        val c = server.createAccount()
        PushReceiver().use { receiver ->
            TestShell.signedIn(server, c).use { phone ->
                assertTrue(phone.registration.onNewToken(PushProvider.WEBHOOK, receiver.url))
                phone.awaitState { it.waiting == 0 }
                phone.policy.onBackground()
                val lease = awaitBackgroundLease(phone)
                val sessionId = phone.engine.snapshot.session.sessionId!!
                val before = server.heartbeats()
                val outcome = phone.push.onUnifiedPushMessage(
                    """{"v":1,"type":"renew","session_id":"$sessionId","lease_until":$lease}""".toByteArray(),
                )
                assertEquals(PushOutcome.Applied("renew"), outcome)
                // The heartbeat went out before the router returned.
                assertEquals(before + 1, server.heartbeats())
            }
        }
    }

    @Test
    fun aStalePushChangesNothingAndIsReported(): Unit = runBlocking {
        val c = server.createAccount()
        val reports = java.util.Collections.synchronizedList(mutableListOf<PushOutcome>())
        TestShell.signedIn(server, c).use { phone ->
            val router = PushRouter(phone.engine) { reports.add(it) }
            phone.policy.onBackground()
            val s = phone.engine.snapshot
            val id = s.session.sessionId!!
            val version = s.status!!.version
            val before = phone.toggle.current()
            val older = router.route(statusPush(id, "busy", version))
            assertTrue(older is PushOutcome.Stale, "$older")
            val elsewhere = router.route(statusPush("another-session", "busy", version + 5))
            assertTrue(elsewhere is PushOutcome.Stale, "$elsewhere")
            assertEquals(before.confirmed, phone.engine.snapshot.status?.confirmed)
            assertEquals(version, phone.engine.snapshot.status?.version)
            assertEquals(listOf(older, elsewhere), reports.toList())
        }
    }

    @Test
    fun aMalformedPushChangesNothingAndIsReported(): Unit = runBlocking {
        val c = server.createAccount()
        TestShell.signedIn(server, c).use { phone ->
            val before = phone.engine.snapshot
            for (data in listOf(mapOf("presence" to "not json"), mapOf("hello" to "world"), mapOf("presence" to """{"v":9,"type":"renew"}"""))) {
                val outcome = phone.push.onFcmMessage(data)
                assertTrue(outcome is PushOutcome.Malformed && outcome.why.isNotEmpty(), "$data -> $outcome")
            }
            assertTrue(phone.push.onUnifiedPushMessage(byteArrayOf(0xff.toByte(), 0x00)) is PushOutcome.Malformed)
            assertEquals(before.status, phone.engine.snapshot.status)
            assertEquals(before.session, phone.engine.snapshot.session)
        }
    }

    @Test
    fun inTheBackgroundWithPushTheDeviceGetsTheBackgroundLease(): Unit = runBlocking {
        val c = server.createAccount()
        PushReceiver().use { receiver ->
            TestShell.signedIn(server, c).use { phone ->
                phone.policy.onForeground()
                assertTrue(phone.registration.onNewToken(PushProvider.WEBHOOK, receiver.url))
                phone.awaitState { it.waiting == 0 && it.wedged.isEmpty() }
                phone.policy.onBackground()
                val lease = awaitBackgroundLease(phone)
                val left = lease - phone.engine.serverTimeNow()
                // Default background ttl: 30 min.
                assertTrue(left in 25 * 60_000L..35 * 60_000L, "lease left $left ms")
                // And the chat box keeps counting the agent.
                phone.toggle.choose(AgentStatus.ONLINE)
                phone.awaitState { it.confirmed == AgentStatus.ONLINE && !it.pending }
                assertEquals("online", server.widgetStatus(c))
            }
        }
    }

    @Test
    fun inTheBackgroundWithoutPushTheDeviceKeepsTheActiveLease(): Unit = runBlocking {
        val c = server.createAccount()
        TestShell.signedIn(server, c).use { phone ->
            phone.policy.onBackground()
            // A heartbeat in background mode without push: the active terms (ttl 60 s).
            phone.engine.backgroundRefresh(10_000)
            val lease = phone.engine.snapshot.leaseUntil!!
            val left = lease - phone.engine.serverTimeNow()
            assertTrue(left in 1..61_000L, "lease left $left ms")
            assertNull(phone.policy.plan(), "nothing queued and no push: no refresh to schedule")
        }
    }

    @Test
    fun networkLossPausesRetriesAndItsReturnResumesThem(): Unit = runBlocking {
        val c = server.createAccount()
        TestShell.signedIn(server, c).use { phone ->
            TestShell.signedIn(server, c, "tablet").use { tablet ->
                phone.policy.onNetworkLost()
                phone.awaitState { it.connectionState == Connection.NO_NETWORK }
                phone.toggle.choose(AgentStatus.BUSY)
                // The server is up, but nothing is attempted while the OS says there is no network.
                val early = withTimeoutOrNull(1_500) { tablet.toggle.state.first { it.confirmed == AgentStatus.BUSY } }
                assertNull(early, "a change went out with the network down")
                assertEquals(1, phone.toggle.current().waiting)
                assertEquals("No network", phone.toggle.current().connection)
                phone.policy.onNetworkAvailable()
                phone.awaitState { it.confirmed == AgentStatus.BUSY && it.waiting == 0 }
                tablet.awaitState { it.confirmed == AgentStatus.BUSY }
            }
        }
    }

    @Test
    fun aRefreshWithADeadlineFinishesInsideIt(): Unit = runBlocking {
        TestServer().use { own ->
            val c = own.createAccount()
            TestShell.signedIn(own, c).use { phone ->
                phone.policy.onBackground()
                val ok = phone.policy.refresh(5_000)
                assertTrue(ok.finished, "${ok.detail}")
                assertTrue(ok.elapsedMs < 5_000, "took ${ok.elapsedMs} ms")
                // Server gone, a change queued: the refresh gives up at its deadline, not later.
                own.stop()
                phone.toggle.choose(AgentStatus.BUSY)
                val late = phone.policy.refresh(2_000)
                assertFalse(late.finished)
                assertNotNull(late.detail)
                assertTrue(late.elapsedMs in 0..2_750, "took ${late.elapsedMs} ms for a 2 s deadline")
                assertEquals(1, phone.toggle.current().waiting, "the change is still kept")
            }
        }
    }

    @Test
    fun theRefreshPlanFollowsPushAndTheOutbox(): Unit = runBlocking {
        val c = server.createAccount()
        PushReceiver().use { receiver ->
            TestShell.signedIn(server, c).use { phone ->
                phone.policy.onForeground()
                assertNull(phone.policy.plan(), "in the foreground the engine heartbeats itself")
                phone.registration.onNewToken(PushProvider.WEBHOOK, receiver.url)
                phone.awaitState { it.waiting == 0 }
                val plan = assertNotNull(phone.policy.onBackground())
                val lease = assertNotNull(phone.engine.snapshot.leaseUntil)
                val left = lease - phone.engine.serverTimeNow()
                // After the renew push (5 min before the end) and before the lease ends.
                assertTrue(plan.delayMs in (left - 5 * 60_000)..left, "plan $plan, lease left $left")
                assertEquals(25_000, plan.deadlineMs)
                phone.policy.onKeepAliveStarted()
                assertNull(phone.policy.plan(), "the keep-alive service holds the active lease")
            }
        }
    }

    @Test
    fun aNewPushTokenIsRegisteredOnceAndARefusedOneIsReported(): Unit = runBlocking {
        val c = server.createAccount()
        PushReceiver().use { receiver ->
            TestShell.signedIn(server, c).use { phone ->
                assertTrue(phone.registration.onNewToken(PushProvider.WEBHOOK, receiver.url))
                assertTrue(phone.registration.onNewToken(PushProvider.WEBHOOK, receiver.url))
                assertEquals(PushChannel(PushProvider.WEBHOOK, receiver.url), phone.registration.current.value)
                phone.awaitState { it.waiting == 0 && it.wedged.isEmpty() }
                // UnifiedPush without the distributor's keys: refused on the device, reported.
                assertFalse(phone.registration.onNewToken(PushProvider.UNIFIEDPUSH, "https://up.example.org/x"))
                assertTrue(phone.registration.problem.value!!.startsWith("That was refused"), phone.registration.problem.value)
                assertEquals(PushProvider.WEBHOOK, phone.registration.current.value?.provider)
            }
        }
    }

    @Test
    fun aWrongPasswordReadsAsAPersonWouldSayIt(): Unit = runBlocking {
        val c = server.createAccount()
        TestShell.open(server.url).use { phone ->
            assertFalse(phone.toggle.signIn(c.account, c.email, "not the password"))
            assertEquals("Wrong account, email or password.", phone.toggle.current().error)
            assertFalse(phone.toggle.current().signedIn)
        }
    }

    @Test
    fun signingOutFromTheShellEndsTheSessionAtOnce(): Unit = runBlocking {
        val c = server.createAccount()
        TestShell.signedIn(server, c).use { phone ->
            phone.toggle.choose(AgentStatus.ONLINE)
            phone.awaitState { it.confirmed == AgentStatus.ONLINE && !it.pending }
            assertEquals("online", server.widgetStatus(c))
            assertTrue(phone.toggle.signOut())
            assertFalse(phone.toggle.current().signedIn)
            // No lease to wait out: the website shows offline right away.
            assertEquals("offline", server.widgetStatus(c))
        }
    }
}

fun statusPush(sessionId: String, status: String, version: Long) =
    """{"v":1,"type":"status","session_id":"$sessionId","status":{"status":"$status","version":$version,""" +
        """"intent_at":${System.currentTimeMillis()},"changed_by_device":"elsewhere"}}"""

/**
 * Waits until the engine holds a lease longer than the active ttl (a background lease): on
 * every snapshot published, and on the engine's current snapshot every 100 ms.
 */
suspend fun awaitBackgroundLease(phone: TestShell): Long {
    val started = System.nanoTime()
    fun long(s: dev.presence.ClientSnapshot) = s.leaseUntil?.let { it - phone.engine.serverTimeNow() > 120_000 } == true
    val current = kotlinx.coroutines.flow.flow {
        while (true) {
            emit(phone.engine.snapshot)
            kotlinx.coroutines.delay(100)
        }
    }
    val s = kotlinx.coroutines.withTimeoutOrNull(30_000) {
        kotlinx.coroutines.flow.merge(phone.engine.snapshots, current).first(::long)
    } ?: error("no background lease after ${(System.nanoTime() - started) / 1_000_000} ms: ${phone.engine.snapshot}")
    return s.leaseUntil!!
}
