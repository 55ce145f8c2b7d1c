package dev.presence.tests

// What only the binding tests need; the server harness is the shared
// test-support/kotlin/TestServer.kt (linked here).

import dev.presence.ClientConfig
import dev.presence.ClientTuning
import dev.presence.DeviceInfo
import dev.presence.Platform
import dev.presence.PresenceEngine
import dev.presence.testing.tempDir
import java.io.File
import java.net.ServerSocket
import java.util.concurrent.CountDownLatch

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

suspend fun openEngine(serverUrl: String, name: String = "kotlin test device"): PresenceEngine =
    PresenceEngine.open(config(serverUrl, name))

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
