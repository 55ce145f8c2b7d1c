package dev.presence.testing

import java.io.File
import java.net.ServerSocket
import java.net.URI
import java.net.http.HttpClient
import java.net.http.HttpRequest
import java.net.http.HttpResponse
import java.nio.file.Files
import java.time.Duration
import java.util.UUID
import java.util.concurrent.LinkedBlockingQueue
import java.util.concurrent.TimeUnit

// The one JVM test harness for a real server, shared by the Kotlin binding tests
// (tests/kotlin/TestServer.kt) and the Android shell tests
// (android/app/src/test/kotlin/dev/presence/testing/TestServer.kt): both are links to this
// file, so `cargo xtask test` and Gradle compile the same harness into each suite.

/** System property first (set by `cargo xtask test`), then the environment. */
fun setting(name: String): String =
    System.getProperty(name) ?: System.getenv(name)
        ?: error("$name is not set (run these tests through `cargo xtask test`)")

const val ADMIN_TOKEN = "jvm-test-admin-token"

/** Default server flags: the webhook push provider may reach loopback receivers. */
val WEBHOOK_ALLOWED = listOf("--push-webhook-allow", "127.0.0.1")

/**
 * The real `presence-server` binary on 127.0.0.1 with a data dir of its own and the given
 * extra flags, started at once. [stop] kills it (SIGKILL); [start] again reuses the port and
 * the data dir, like a restart after a crash.
 */
class TestServer(private var flags: List<String> = WEBHOOK_ALLOWED) : AutoCloseable {
    private val dataDir: File = Files.createTempDirectory("presence-server").toFile()
    private var process: Process? = null
    var port: Int = 0
        private set
    val url: String get() = "http://127.0.0.1:$port"
    private val http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build()

    companion object {
        fun start(): TestServer = TestServer()
    }

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
            """{"name":"Test $slug","slug":"$slug","owner":{"name":"Owner","email":"$email","password":"$password"}}""",
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

/** An account's owner, and the account's widget key. */
data class Credentials(val account: String, val email: String, val password: String, val widgetKey: String)

/** Client data dirs made by the tests; removed when the JVM exits. */
private val tempDirs: MutableList<File> = java.util.Collections.synchronizedList(mutableListOf<File>()).also { dirs ->
    Runtime.getRuntime().addShutdownHook(Thread { synchronized(dirs) { dirs.forEach { it.deleteRecursively() } } })
}

fun tempDir(): File = Files.createTempDirectory("presence-client").toFile().also { tempDirs.add(it) }

/** A port nothing listens on. */
fun deadPort(): Int = ServerSocket(0).use { it.localPort }
