package dev.presence.tests

import dev.presence.AgentStatus
import dev.presence.ChatboxStatus
import dev.presence.ClientSnapshot
import dev.presence.Connection
import dev.presence.LogLevel
import dev.presence.LogRecord
import dev.presence.LogSink
import dev.presence.PresenceClient
import dev.presence.PresenceEngine
import dev.presence.PresenceException
import dev.presence.PresenceListener
import dev.presence.PushProvider
import dev.presence.SessionState
import dev.presence.UnifiedPushKeys
import dev.presence.initLogging
import dev.presence.storedServerUrl
import java.lang.ref.WeakReference
import java.util.Collections
import java.util.concurrent.TimeUnit
import kotlin.test.assertEquals
import kotlin.test.assertFailsWith
import kotlin.test.assertNotEquals
import kotlin.test.assertNotNull
import kotlin.test.assertTrue
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.async
import kotlinx.coroutines.flow.first
import kotlinx.coroutines.launch
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeout
import org.junit.AfterClass
import org.junit.BeforeClass
import org.junit.Test
import dev.presence.testing.*

/**
 * The generated Kotlin bindings, the [PresenceEngine] wrapper and libpresence_ffi.so against the
 * real presence-server binary. Each test opens its own engines with their own data dirs.
 */
class PresenceTests {
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
    }

    private suspend fun loggedIn(creds: Credentials, name: String = "kotlin test device"): PresenceEngine {
        val engine = openEngine(server.url, name)
        engine.login(creds.account, creds.email, creds.password)
        return engine
    }

    @Test
    fun loginGivesAnActiveSessionWithTheAgent(): Unit = runBlocking {
        val creds = server.createAccount()
        val dir = tempDir()
        assertEquals(null, storedServerUrl(dir.path))
        PresenceEngine.open(config(server.url, dataDir = dir)).use { engine ->
            engine.login(creds.account, creds.email, creds.password)
            val s = engine.awaitSnapshot { it.session.state == SessionState.ACTIVE && it.status != null }
            assertEquals(creds.account, s.session.account)
            assertEquals(creds.email, s.session.agent?.email)
            assertNotNull(s.session.sessionId)
            val lease = assertNotNull(s.leaseUntil)
            assertTrue(lease > engine.serverTimeNow(), "lease $lease already over")
            engine.awaitSnapshot { it.connection == Connection.CONNECTED }
        }
        assertEquals(server.url, storedServerUrl(dir.path))
    }

    @Test
    fun aStatusChangeOnOneDeviceReachesTheOther(): Unit = runBlocking {
        val creds = server.createAccount()
        loggedIn(creds, "phone").use { phone ->
            loggedIn(creds, "tablet").use { tablet ->
                assertNotEquals(phone.deviceId, tablet.deviceId)
                phone.setStatus(AgentStatus.BUSY)
                val mine = phone.awaitSnapshot { it.status?.pending == false && it.status?.confirmed == AgentStatus.BUSY }
                val theirs = tablet.awaitSnapshot { it.status?.confirmed == AgentStatus.BUSY }
                assertEquals(AgentStatus.BUSY, theirs.status?.current)
                assertEquals(mine.status?.version, theirs.status?.version)
            }
        }
    }

    @Test
    fun setStatusIsStoredAtOnceAndShownAsCurrent(): Unit = runBlocking {
        val creds = server.createAccount()
        loggedIn(creds).use { engine ->
            engine.setStatus(AgentStatus.ONLINE)
            // Returned only after the durable write: the change shows at once.
            assertEquals(AgentStatus.ONLINE, engine.snapshot.status?.current)
            val s = engine.awaitSnapshot {
                it.status?.pending == false && it.outbox.pending == 0u && it.chatbox?.status == ChatboxStatus.ONLINE
            }
            assertEquals(AgentStatus.ONLINE, s.status?.confirmed)
        }
    }

    @Test
    fun aChangeMadeWhileTheServerIsDownIsDeliveredAfterItRestarts(): Unit = runBlocking {
        // A server of its own: this test stops and restarts it.
        TestServer.start().use { own ->
            val creds = own.createAccount()
            val engine = openEngine(own.url)
            engine.use {
                engine.login(creds.account, creds.email, creds.password)
                engine.awaitSnapshot { it.status != null }
                own.stop()
                engine.setStatus(AgentStatus.BUSY)
                val queued = engine.snapshot
                assertEquals(AgentStatus.BUSY, queued.status?.current)
                assertTrue(queued.status?.pending == true, "$queued")
                assertEquals(1u, queued.outbox.pending)

                own.start()
                val delivered = engine.awaitSnapshot(20_000) {
                    it.outbox.pending == 0u && it.status?.confirmed == AgentStatus.BUSY
                }
                assertEquals(false, delivered.status?.pending)
            }
            // The server really has it: a fresh device sees it at login.
            loggedInTo(own, creds).use { other ->
                other.awaitSnapshot { it.status?.confirmed == AgentStatus.BUSY }
            }
        }
    }

    private suspend fun loggedInTo(s: TestServer, creds: Credentials): PresenceEngine {
        val engine = openEngine(s.url, "second device")
        engine.login(creds.account, creds.email, creds.password)
        return engine
    }

    @Test
    fun aStatusPushWithANewerVersionAppliesAndAnOlderOneIsIgnored(): Unit = runBlocking {
        val creds = server.createAccount()
        loggedIn(creds).use { engine ->
            // In the background there is no event stream: pushes are how changes arrive.
            engine.setLifecycle(dev.presence.Lifecycle.BACKGROUND)
            val before = engine.awaitSnapshot { it.status != null && it.session.sessionId != null }
            val sessionId = before.session.sessionId!!
            val version = before.status!!.version

            engine.handlePush(statusPush(sessionId, "busy", version + 1))
            val applied = engine.awaitSnapshot { it.status?.confirmed == AgentStatus.BUSY }
            assertEquals(version + 1, applied.status?.version)

            engine.handlePush(statusPush(sessionId, "offline", version))
            assertEquals(AgentStatus.BUSY, engine.snapshot.status?.confirmed)
            assertEquals(version + 1, engine.snapshot.status?.version)
        }
    }

    private fun statusPush(sessionId: String, status: String, version: Long) =
        """{"v":1,"type":"status","session_id":"$sessionId","status":{"status":"$status","version":$version,""" +
            """"intent_at":${System.currentTimeMillis()},"changed_by_device":"elsewhere"}}"""

    @Test
    fun aPushInEachProvidersFormApplies(): Unit = runBlocking {
        val creds = server.createAccount()
        loggedIn(creds).use { engine ->
            engine.setLifecycle(dev.presence.Lifecycle.BACKGROUND)
            val before = engine.awaitSnapshot { it.status != null && it.session.sessionId != null }
            val sessionId = before.session.sessionId!!
            val version = before.status!!.version
            // FCM: the data value `presence`, as RemoteMessage.data["presence"] gives it.
            engine.handlePush(statusPush(sessionId, "busy", version + 1))
            engine.awaitSnapshot { it.status?.confirmed == AgentStatus.BUSY }
            // UnifiedPush: the decrypted message bytes, as text.
            val bytes = statusPush(sessionId, "offline", version + 2).toByteArray(Charsets.UTF_8)
            engine.handlePush(String(bytes, Charsets.UTF_8))
            engine.awaitSnapshot { it.status?.confirmed == AgentStatus.OFFLINE }
            // APNs-style userInfo with the payload as an object is accepted too.
            engine.handlePush("""{"aps":{"content-available":1},"presence":${statusPush(sessionId, "online", version + 3)}}""")
            engine.awaitSnapshot { it.status?.confirmed == AgentStatus.ONLINE }
        }
    }

    @Test
    fun aUnifiedPushRegistrationTakesTheDistributorsKeysAndNeedsThem(): Unit = runBlocking {
        val creds = server.createAccount()
        loggedIn(creds).use { engine ->
            val e = assertFailsWith<PresenceException.InvalidInput> {
                engine.registerPush(PushProvider.UNIFIEDPUSH, "https://push.example.org/up/1")
            }
            assertTrue(e.detail.contains("keys"), e.detail)
            assertFailsWith<PresenceException.InvalidInput> {
                engine.registerPush(PushProvider.FCM, "fcm-token", UnifiedPushKeys("BCVx", "BTBZ"))
            }
            // The RFC 8291 example keys: the server accepts them and nothing is refused.
            engine.registerPush(
                PushProvider.UNIFIEDPUSH,
                "https://push.example.org/up/1",
                UnifiedPushKeys(
                    p256dh = "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4",
                    auth = "BTBZMqHH6r4Tts7J_aSIgg",
                ),
            )
            val sent = engine.awaitSnapshot { it.outbox.pending == 0u }
            assertTrue(sent.outbox.wedged.isEmpty(), "refused: ${sent.outbox.wedged}")
            // A key that is not a P-256 point is refused by the server, by field.
            engine.registerPush(PushProvider.UNIFIEDPUSH, "https://push.example.org/up/2", UnifiedPushKeys("AAAA", "BTBZMqHH6r4Tts7J_aSIgg"))
            val refused = engine.awaitSnapshot { it.outbox.wedged.isNotEmpty() }
            assertTrue(refused.outbox.wedged.first().detail.contains("p256dh"), "${refused.outbox.wedged}")
        }
    }

    @Test
    fun aMalformedPushThrowsInvalidInputAndChangesNothing(): Unit = runBlocking {
        val creds = server.createAccount()
        loggedIn(creds).use { engine ->
            val before = engine.awaitSnapshot { it.status != null }
            for (payload in listOf("not json", "{}", """{"v":1,"type":"dance","session_id":"x"}""", """{"v":2,"type":"renew"}""")) {
                val e = assertFailsWith<PresenceException.InvalidInput>(payload) { engine.handlePush(payload) }
                assertTrue(e.detail.isNotEmpty())
            }
            assertEquals(before.status, engine.snapshot.status)
            assertEquals(before.session, engine.snapshot.session)
        }
    }

    @Test
    fun aWrongPasswordIsUnauthorized(): Unit = runBlocking {
        val creds = server.createAccount()
        openEngine(server.url).use { engine ->
            val e = assertFailsWith<PresenceException.Unauthorized> {
                engine.login(creds.account, creds.email, "not the password")
            }
            assertTrue(e.detail.isNotEmpty())
            assertEquals(SessionState.LOGGED_OUT, engine.snapshot.session.state)
        }
    }

    @Test
    fun aDeadServerIsNetwork(): Unit = runBlocking {
        openEngine("http://127.0.0.1:${deadPort()}").use { engine ->
            val e = assertFailsWith<PresenceException.Network> {
                engine.login("acme", "a@acme.example", "whatever")
            }
            assertTrue(e.detail.isNotEmpty())
        }
    }

    @Test
    fun snapshotsArriveOnBackgroundThreadsThroughTheFlow(): Unit = runBlocking {
        val creds = server.createAccount()
        openEngine(server.url).use { engine ->
            // A raw listener shows where the engine calls from; the Flow carries the same data.
            val threads = Collections.synchronizedSet(mutableSetOf<String>())
            val raw = subscribeRaw(engine) { threads.add(Thread.currentThread().name) }
            val seen = Collections.synchronizedList(mutableListOf<ClientSnapshot>())
            val collector = launch(Dispatchers.Default) { engine.snapshots.collect { seen.add(it) } }

            engine.login(creds.account, creds.email, creds.password)
            engine.setStatus(AgentStatus.BUSY)
            withTimeout(10_000) {
                engine.snapshots.first { it.status?.confirmed == AgentStatus.BUSY && it.status?.pending == false }
            }
            withTimeout(10_000) {
                while (seen.none { it.status?.confirmed == AgentStatus.BUSY }) kotlinx.coroutines.yield()
            }
            collector.cancel()
            raw.cancel()
            assertTrue(seen.any { it.session.state == SessionState.ACTIVE })
            val caller = Thread.currentThread().name
            assertTrue(threads.isNotEmpty() && threads.none { it == caller }, "listener threads: $threads")
        }
    }

    @Test
    fun closeWhileACallIsInFlightEndsTheCallAndLaterCallsThrow(): Unit = runBlocking {
        Blackhole().use { hole ->
            val engine = openEngine(hole.url)
            val login = async(Dispatchers.Default) {
                runCatching { engine.login("acme", "a@acme.example", "pw-secret-1") }
            }
            assertTrue(hole.accepted.await(10, TimeUnit.SECONDS), "the login never reached the server")
            val started = System.nanoTime()
            engine.close()
            val outcome = withTimeout(5_000) { login.await() }
            val e = outcome.exceptionOrNull()
            assertTrue(e is PresenceException, "in-flight login ended with $outcome")
            assertTrue(System.nanoTime() - started < TimeUnit.SECONDS.toNanos(5))
            assertFailsWith<PresenceException.Internal> { engine.setStatus(AgentStatus.ONLINE) }
            engine.close() // idempotent
        }
    }

    @Test
    fun logsReachTheLogSink(): Unit = runBlocking {
        val records = Collections.synchronizedList(mutableListOf<LogRecord>())
        val sink = object : LogSink {
            override fun log(record: LogRecord) {
                records.add(record)
            }
        }
        initLogging(LogLevel.DEBUG, sink)
        try {
            // Against a dead server the outbox logs its failed attempt (presence_core, debug).
            openEngine("http://127.0.0.1:${deadPort()}").use { engine ->
                runCatching { engine.login("acme", "a@acme.example", "pw-secret-1") }
                withTimeout(10_000) {
                    while (records.none { it.target.startsWith("presence_ffi") }) kotlinx.coroutines.yield()
                }
            }
            assertTrue(records.any { it.target.startsWith("presence_ffi") && it.level == LogLevel.DEBUG }, "$records")
            assertTrue(records.all { it.text.isNotEmpty() })
            assertTrue(records.none { it.level == LogLevel.TRACE }, "trace records at debug level")
        } finally {
            initLogging(LogLevel.WARN, null)
        }
    }

    @Test
    fun anEngineThatWasNeverClosedIsCollectedAndReleasedOnTheCleanerThread(): Unit = runBlocking {
        val creds = server.createAccount()
        val (engineRef, clientRef) = openAndForget(creds)
        val deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10)
        while ((engineRef.get() != null || clientRef.get() != null) && System.nanoTime() < deadline) {
            System.gc()
            kotlinx.coroutines.delay(20)
        }
        assertTrue(engineRef.get() == null, "the engine was never collected")
        assertTrue(clientRef.get() == null, "the native client was never collected")
        // The Cleaner released the native client on its own thread; the library still works.
        openEngine(server.url).use { engine ->
            engine.login(creds.account, creds.email, creds.password)
            engine.awaitSnapshot { it.session.state == SessionState.ACTIVE }
        }
    }

    /** A logged-in engine with a live snapshot subscription, dropped without close(). */
    private suspend fun openAndForget(creds: Credentials): Pair<WeakReference<PresenceEngine>, WeakReference<PresenceClient>> {
        val engine = loggedIn(creds)
        engine.awaitSnapshot { it.session.state == SessionState.ACTIVE }
        return WeakReference(engine) to WeakReference(engine.client)
    }

    @Test
    fun theDesktopCliAndTheAppAreDevicesOfTheSameAgent(): Unit = runBlocking {
        val creds = server.createAccount()
        val cliDir = tempDir()
        fun cli(vararg args: String): String =
            runCli(listOf("--data-dir", cliDir.path, "--server", server.url) + args)

        cli("login", "--account", creds.account, "--email", creds.email, "--password", creds.password)
        loggedIn(creds, "phone").use { phone ->
            // The CLI's change reaches the app...
            val said = cli("status", "busy")
            assertTrue("busy: confirmed" in said, said)
            phone.awaitSnapshot { it.status?.confirmed == AgentStatus.BUSY }
            // ...and the app's change reaches the CLI.
            phone.setStatus(AgentStatus.OFFLINE)
            phone.awaitSnapshot { it.status?.pending == false && it.status?.confirmed == AgentStatus.OFFLINE }
            val json = cli("show", "--json")
            assertTrue(Regex(""""confirmed":\s*"offline"""").containsMatchIn(json), json)
        }
    }

    @Test
    fun logoutEndsTheSessionAtOnce(): Unit = runBlocking {
        val creds = server.createAccount()
        loggedIn(creds).use { engine ->
            engine.awaitSnapshot { it.session.state == SessionState.ACTIVE }
            engine.logout()
            val s = engine.snapshot
            assertEquals(SessionState.LOGGED_OUT, s.session.state)
            assertEquals(null, s.session.sessionId)
        }
    }
}

/** Runs the `presence` CLI; returns its stdout, failing the test on a non-zero exit. */
private fun runCli(args: List<String>): String {
    val p = ProcessBuilder(listOf(setting("PRESENCE_CLI_BIN")) + args).redirectErrorStream(true).start()
    val out = p.inputStream.bufferedReader().readText()
    check(p.waitFor(30, TimeUnit.SECONDS)) { "presence ${args.joinToString(" ")} hung" }
    check(p.exitValue() == 0) { "presence ${args.joinToString(" ")} exited ${p.exitValue()}: $out" }
    return out
}

/** Subscribes a plain callback to the engine's client, for tests that look at threads. */
private fun subscribeRaw(engine: PresenceEngine, f: (ClientSnapshot) -> Unit) =
    engine.client.subscribe(
        object : PresenceListener {
            override fun onSnapshot(snapshot: ClientSnapshot) = f(snapshot)
        },
    )
