package dev.presence.shell

// What only the shell tests need; the server harness is the shared
// test-support/kotlin/TestServer.kt (linked here).

import com.sun.net.httpserver.HttpServer
import dev.presence.ClientConfig
import dev.presence.ClientTuning
import dev.presence.DeviceInfo
import dev.presence.Platform
import dev.presence.testing.Credentials
import dev.presence.testing.TestServer
import dev.presence.testing.tempDir
import java.net.InetSocketAddress
import java.util.UUID
import java.util.concurrent.Executors
import java.util.concurrent.atomic.AtomicInteger
import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.SupervisorJob
import kotlinx.coroutines.cancel
import kotlinx.coroutines.flow.first
import kotlinx.coroutines.runBlocking

/** Fast retries, so a restarted server is reached within a second or two. */
val testTuning = ClientTuning(
    requestTimeoutMs = 5_000uL,
    backoffBaseMs = 100uL,
    backoffCapMs = 500uL,
    sseIdleTimeoutMs = null,
    clockSkewMs = null,
)

fun config(serverUrl: String, name: String): ClientConfig = ClientConfig(
    serverUrl = serverUrl,
    dataDir = tempDir().path,
    device = DeviceInfo(platform = Platform.ANDROID, name = name, appVersion = "shell-test"),
    tuning = testTuning,
)

/** A shell over the real engine, as the app's process holds one, with its own scope. */
class TestShell private constructor(val shell: Shell, private val scope: CoroutineScope) : AutoCloseable {
    val engine: Engine get() = shell.engine
    val toggle get() = shell.toggle
    val push get() = shell.push
    val policy get() = shell.policy
    val registration get() = shell.registration

    companion object {
        suspend fun open(
            serverUrl: String,
            name: String = "phone",
            timings: RefreshTimings = RefreshTimings(),
            time: DeviceTime = DeviceTime.System,
        ): TestShell {
            val scope = CoroutineScope(SupervisorJob() + Dispatchers.Default)
            return TestShell(Shell.open(config(serverUrl, name), scope, timings, time), scope)
        }

        suspend fun signedIn(
            server: TestServer,
            c: Credentials,
            name: String = "phone",
            timings: RefreshTimings = RefreshTimings(),
            time: DeviceTime = DeviceTime.System,
        ): TestShell {
            val s = open(server.url, name, timings, time)
            check(s.toggle.signIn(c.account, c.email, c.password)) { "sign-in failed: ${s.toggle.current().error}" }
            s.awaitState { it.signedIn && it.confirmed != null }
            return s
        }
    }

    /** Waits (with a deadline) until the toggle screen's state satisfies [p]. */
    suspend fun awaitState(timeoutMs: Long = 15_000, p: (ToggleState) -> Boolean): ToggleState =
        kotlinx.coroutines.withTimeoutOrNull(timeoutMs) { toggle.state.first(p) }
            ?: error("state never matched within $timeoutMs ms; last: ${toggle.current()}")

    override fun close() {
        engine.close()
        scope.cancel()
    }
}

/**
 * A loopback HTTP receiver standing in for the phone's push channel: the server's `webhook`
 * provider POSTs each payload here and [deliver] hands the bytes to the shell (as the
 * UnifiedPush receiver does with decrypted bytes). Counts what arrived.
 */
class PushReceiver(var deliver: suspend (ByteArray) -> Unit = {}) : AutoCloseable {
    private val server = HttpServer.create(InetSocketAddress("127.0.0.1", 0), 0)
    val received = AtomicInteger(0)
    val times = java.util.Collections.synchronizedList(mutableListOf<Long>())
    val url: String = "http://127.0.0.1:${server.address.port}/push/${UUID.randomUUID()}"

    init {
        server.executor = Executors.newFixedThreadPool(2)
        server.createContext("/push/") { ex ->
            val body = ex.requestBody.readBytes()
            received.incrementAndGet()
            times.add(System.nanoTime())
            runCatching { runBlocking { deliver(body) } }
            ex.sendResponseHeaders(204, -1)
            ex.close()
        }
        server.start()
    }

    override fun close() {
        server.stop(0)
        (server.executor as java.util.concurrent.ExecutorService).shutdownNow()
    }
}

/** A device clock that reads [now] until set otherwise, in a given zone and locale. */
class FixedDeviceTime(var now: Long, private val zone: java.time.ZoneId, private val locale: java.util.Locale) : DeviceTime {
    override fun nowMs(): Long = now
    override fun zone(): java.time.ZoneId = zone
    override fun locale(): java.util.Locale = locale
}
