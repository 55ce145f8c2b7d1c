package dev.presence.shell

import com.sun.net.httpserver.HttpServer
import dev.presence.ClientConfig
import dev.presence.ClientTuning
import dev.presence.DeviceInfo
import dev.presence.Platform
import java.io.File
import java.net.InetSocketAddress
import java.net.ServerSocket
import java.net.URI
import java.net.http.HttpClient
import java.net.http.HttpRequest
import java.net.http.HttpResponse
import java.nio.file.Files
import java.time.Duration
import java.util.UUID
import java.util.concurrent.Executors
import java.util.concurrent.LinkedBlockingQueue
import java.util.concurrent.TimeUnit
import java.util.concurrent.atomic.AtomicInteger
import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.SupervisorJob
import kotlinx.coroutines.cancel
import kotlinx.coroutines.flow.first
import kotlinx.coroutines.runBlocking

/** System property first (set by `cargo xtask test`), then the environment. */
fun setting(name: String): String =
    System.getProperty(name) ?: System.getenv(name)
        ?: error("$name is not set (run the shell tests through `cargo xtask test`)")

const val ADMIN_TOKEN = "android-shell-test-admin-token"

/** Default server flags for the shell tests: the webhook provider may reach loopback receivers. */
val WEBHOOK_ALLOWED = listOf("--push-webhook-allow", "127.0.0.1")

/**
 * The real `presence-server` binary on 127.0.0.1 with a data dir of its own and the given
 * extra flags. [stop] kills it; [start] again reuses the port and data dir (a restart).
 */
class TestServer(private var flags: List<String> = WEBHOOK_ALLOWED) : AutoCloseable {
    private val dataDir: File = Files.createTempDirectory("shell-server").toFile()
    private var process: Process? = null
    var port: Int = 0
        private set
    val url: String get() = "http://127.0.0.1:$port"
    private val http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build()

    init {
        start()
    }

    /** Starts again, optionally with other flags (the data and port are kept). */
    fun start(newFlags: List<String> = flags) {
        check(process == null) { "already running" }
        flags = newFlags
        val cmd = listOf(
            setting("PRESENCE_SERVER_BIN"),
            "--listen", "127.0.0.1:$port",
            "--admin-token", ADMIN_TOKEN,
            "--data-dir", dataDir.path,
        ) + flags
        val p = ProcessBuilder(cmd)
            .redirectError(ProcessBuilder.Redirect.appendTo(File(dataDir, "server.log")))
            .start()
        process = p
        val lines = LinkedBlockingQueue<String>()
        Thread({
            p.inputStream.bufferedReader().forEachLine { lines.put(it) }
            lines.put("<eof>")
        }, "server-stdout").apply { isDaemon = true }.start()
        val deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30)
        while (true) {
            val left = deadline - System.nanoTime()
            val line = lines.poll(maxOf(left, 0), TimeUnit.NANOSECONDS)
                ?: error("presence-server printed no listening line within 30 s")
            if (line == "<eof>") error("presence-server exited: ${File(dataDir, "server.log").readText().takeLast(2000)}")
            val addr = line.substringAfter("listening on http://", "")
            if (addr.isNotEmpty()) {
                port = addr.substringAfterLast(':').toInt()
                return
            }
        }
    }

    fun stop() {
        val p = process ?: return
        p.destroyForcibly()
        p.waitFor(10, TimeUnit.SECONDS)
        process = null
    }

    override fun close() {
        stop()
        dataDir.deleteRecursively()
    }

    fun get(path: String): Pair<Int, String> {
        val r = http.send(
            HttpRequest.newBuilder(URI.create("$url$path")).timeout(Duration.ofSeconds(10)).build(),
            HttpResponse.BodyHandlers.ofString(),
        )
        return r.statusCode() to r.body()
    }

    fun send(method: String, path: String, body: String, token: String = ADMIN_TOKEN): Pair<Int, String> {
        val r = http.send(
            HttpRequest.newBuilder(URI.create("$url$path"))
                .header("Authorization", "Bearer $token")
                .header("Content-Type", "application/json")
                .method(method, HttpRequest.BodyPublishers.ofString(body))
                .timeout(Duration.ofSeconds(10))
                .build(),
            HttpResponse.BodyHandlers.ofString(),
        )
        return r.statusCode() to r.body()
    }

    /** A new account through the operator route; the owner's credentials and the widget key. */
    fun createAccount(): Credentials {
        val slug = "a" + UUID.randomUUID().toString().replace("-", "").take(12)
        val email = "owner@$slug.example"
        val password = "correct horse $slug"
        val (code, body) = send(
            "POST", "/v1/accounts",
            """{"name":"Shell $slug","slug":"$slug","owner":{"name":"Owner","email":"$email","password":"$password"}}""",
        )
        check(code == 201) { "POST /v1/accounts: $code $body" }
        val key = Regex(""""widget_key"\s*:\s*"([^"]+)"""").find(body)?.groupValues?.get(1) ?: error("no widget_key in $body")
        return Credentials(slug, email, password, key)
    }

    /** What the website's chat box shows now, read from the public widget route. */
    fun widgetStatus(c: Credentials): String {
        val (code, body) = get("/v1/widget/${c.widgetKey}/status")
        check(code == 200) { "widget status: $code $body" }
        return Regex(""""status"\s*:\s*"([a-z]+)"""").find(body)!!.groupValues[1]
    }

    /** Heartbeats the server accepted so far (from /metrics). */
    fun heartbeats(): Long {
        val (_, body) = get("/metrics")
        return Regex("""(?m)^presence_heartbeats_total\s+(\d+)""").find(body)!!.groupValues[1].toLong()
    }

    /** Logs in over HTTP as the owner (for admin routes); returns the bearer token. */
    fun ownerToken(c: Credentials): String {
        val (code, body) = send(
            "POST", "/v1/login",
            """{"account":"${c.account}","email":"${c.email}","password":"${c.password}",""" +
                """"device":{"id":"admin-${UUID.randomUUID()}","platform":"cli","name":"admin","app_version":"test"}}""",
            token = "",
        )
        check(code == 200) { "login: $code $body" }
        return Regex(""""token"\s*:\s*"([^"]+)"""").find(body)!!.groupValues[1]
    }
}

data class Credentials(val account: String, val email: String, val password: String, val widgetKey: String)

/** Fast retries, so a restarted server is reached within a second or two. */
val testTuning = ClientTuning(
    requestTimeoutMs = 5_000uL,
    backoffBaseMs = 100uL,
    backoffCapMs = 500uL,
    sseIdleTimeoutMs = null,
    clockSkewMs = null,
)

private val tempDirs = java.util.Collections.synchronizedList(mutableListOf<File>()).also { dirs ->
    Runtime.getRuntime().addShutdownHook(Thread { synchronized(dirs) { dirs.forEach { it.deleteRecursively() } } })
}

fun tempDir(): File = Files.createTempDirectory("shell-client").toFile().also { tempDirs.add(it) }

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
        suspend fun open(serverUrl: String, name: String = "phone", timings: RefreshTimings = RefreshTimings()): TestShell {
            val scope = CoroutineScope(SupervisorJob() + Dispatchers.Default)
            return TestShell(Shell.open(config(serverUrl, name), scope, timings), scope)
        }

        suspend fun signedIn(server: TestServer, c: Credentials, name: String = "phone", timings: RefreshTimings = RefreshTimings()): TestShell {
            val s = open(server.url, name, timings)
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

/** A port nothing listens on. */
fun deadPort(): Int = ServerSocket(0).use { it.localPort }
