package dev.presence.tests

import dev.presence.ClientConfig
import dev.presence.ClientTuning
import dev.presence.DeviceInfo
import dev.presence.Platform
import dev.presence.PresenceEngine
import java.io.File
import java.net.ServerSocket
import java.net.URI
import java.net.http.HttpClient
import java.net.http.HttpRequest
import java.net.http.HttpResponse
import java.nio.file.Files
import java.time.Duration
import java.util.UUID
import java.util.concurrent.CountDownLatch
import java.util.concurrent.LinkedBlockingQueue
import java.util.concurrent.TimeUnit

/** Where the test binaries are: system property first (set by `cargo xtask test`), then env. */
fun setting(name: String): String =
    System.getProperty(name) ?: System.getenv(name)
        ?: error("$name is not set (run the Kotlin tests through `cargo xtask test`)")

const val ADMIN_TOKEN = "kotlin-test-admin-token"

/**
 * The real `presence-server` binary on 127.0.0.1, in a data dir of its own. [stop] kills it;
 * [start] again reuses the same port and data dir, like a restart after a crash.
 */
class TestServer private constructor(private val dataDir: File) : AutoCloseable {
    private var process: Process? = null
    var port: Int = 0
        private set
    val url: String get() = "http://127.0.0.1:$port"

    companion object {
        fun start(): TestServer = TestServer(Files.createTempDirectory("presence-server").toFile()).also { it.start() }
    }

    fun start() {
        check(process == null) { "already running" }
        val cmd = listOf(
            setting("PRESENCE_SERVER_BIN"),
            "--listen", "127.0.0.1:$port",
            "--admin-token", ADMIN_TOKEN,
            "--data-dir", dataDir.path,
        )
        val p = ProcessBuilder(cmd)
            .redirectError(ProcessBuilder.Redirect.appendTo(File(dataDir, "server.log")))
            .start()
        process = p
        // The server prints `listening on http://ADDR` once it accepts connections.
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

    /** Kills the server (SIGKILL) and waits for it to be gone. */
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

    private val http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build()

    /** Creates an account through the operator route; returns the owner's credentials. */
    fun createAccount(): Credentials {
        val slug = "k" + UUID.randomUUID().toString().replace("-", "").take(12)
        val email = "owner@$slug.example"
        val password = "correct horse $slug"
        val body = """{"name":"Kotlin $slug","slug":"$slug","owner":{"name":"Owner","email":"$email","password":"$password"}}"""
        val request = HttpRequest.newBuilder(URI.create("$url/v1/accounts"))
            .header("Authorization", "Bearer $ADMIN_TOKEN")
            .header("Content-Type", "application/json")
            .POST(HttpRequest.BodyPublishers.ofString(body))
            .timeout(Duration.ofSeconds(10))
            .build()
        val response = http.send(request, HttpResponse.BodyHandlers.ofString())
        check(response.statusCode() == 201) { "POST /v1/accounts: ${response.statusCode()} ${response.body()}" }
        return Credentials(slug, email, password)
    }
}

data class Credentials(val account: String, val email: String, val password: String)

/** Fast retries so a restarted server is reached within a second or two. */
val testTuning = ClientTuning(
    requestTimeoutMs = 5_000uL,
    backoffBaseMs = 100uL,
    backoffCapMs = 500uL,
    sseIdleTimeoutMs = null,
    clockSkewMs = null,
)

fun config(serverUrl: String, name: String = "kotlin test device", dataDir: File = tempDir()): ClientConfig =
    ClientConfig(
        serverUrl = serverUrl,
        dataDir = dataDir.path,
        device = DeviceInfo(platform = Platform.ANDROID, name = name, appVersion = "test"),
        tuning = testTuning,
    )

/** Client data dirs made by the tests; removed when the JVM exits. */
private val tempDirs: MutableList<File> = java.util.Collections.synchronizedList(mutableListOf<File>()).also { dirs ->
    Runtime.getRuntime().addShutdownHook(Thread { synchronized(dirs) { dirs.forEach { it.deleteRecursively() } } })
}

fun tempDir(): File = Files.createTempDirectory("presence-client").toFile().also { tempDirs.add(it) }

suspend fun openEngine(serverUrl: String, name: String = "kotlin test device"): PresenceEngine =
    PresenceEngine.open(config(serverUrl, name))

/** A port nothing listens on. */
fun deadPort(): Int = ServerSocket(0).use { it.localPort }

/**
 * A TCP server that accepts connections and never answers, so a request stays in flight.
 * [accepted] counts down when the first connection arrives.
 */
class Blackhole : AutoCloseable {
    private val socket = ServerSocket(0)
    private val held = mutableListOf<java.net.Socket>()
    val accepted = CountDownLatch(1)
    val url: String = "http://127.0.0.1:${socket.localPort}"

    init {
        Thread({
            try {
                while (true) {
                    val s = socket.accept()
                    synchronized(held) { held.add(s) }
                    accepted.countDown()
                }
            } catch (_: Exception) {
                // closed
            }
        }, "blackhole").apply { isDaemon = true }.start()
    }

    override fun close() {
        socket.close()
        synchronized(held) { held.forEach { runCatching { it.close() } } }
    }
}
