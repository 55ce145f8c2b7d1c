package dev.presence.shell

import dev.presence.AgentStatus
import dev.presence.PushProvider
import java.util.concurrent.atomic.AtomicInteger
import kotlin.test.assertEquals
import kotlin.test.assertTrue
import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.channels.Channel
import kotlinx.coroutines.launch
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeoutOrNull
import org.junit.Test
import dev.presence.testing.*

/** The server's defaults a phone lives with: background ttl 30 min (renew margin 5 min). */
const val DEFAULT_BACKGROUND_TTL_MS = 1_800_000L

/**
 * The background budget: wakeups (pushes plus refreshes) per hour in the background, counted
 * against a server with short timings and scaled to the defaults. The test plays the OS: it
 * delivers the server's pushes to the push router and runs the refreshes the policy plans,
 * replanning after every wakeup as the app's glue does.
 */
class BudgetTests {
    private val ttl = 3_000L
    private val shortTimings = WEBHOOK_ALLOWED + listOf(
        "--active-interval-ms", "500", "--active-ttl-ms", "1500",
        "--background-ttl-ms", "$ttl", "--renew-margin-ms", "1000",
    )

    private class Os(val shell: TestShell, scope: CoroutineScope) {
        val refreshes = AtomicInteger(0)
        val replan = Channel<Unit>(Channel.CONFLATED)
        private val job = scope.launch(Dispatchers.Default) {
            while (true) {
                val plan = shell.policy.plan()
                val woken = withTimeoutOrNull(plan?.delayMs ?: Long.MAX_VALUE) { replan.receive() }
                if (woken == null && plan != null) {
                    refreshes.incrementAndGet()
                    shell.policy.refreshThenPlan(plan.deadlineMs)
                }
            }
        }

        fun stop() = job.cancel()
    }

    private fun measure(forwardPushes: Boolean, leases: Int): Triple<Double, Int, Int> = runBlocking {
        TestServer(shortTimings).use { server ->
            val c = server.createAccount()
            PushReceiver().use { receiver ->
                TestShell.signedIn(server, c, timings = RefreshTimings(deadlineMs = 2_000)).use { phone ->
                    val os = Os(phone, this)
                    receiver.deliver = { bytes ->
                        if (forwardPushes) phone.push.onUnifiedPushMessage(bytes)
                        os.replan.trySend(Unit)
                    }
                    assertTrue(phone.registration.onNewToken(PushProvider.WEBHOOK, receiver.url))
                    phone.toggle.choose(AgentStatus.ONLINE)
                    phone.awaitState { it.confirmed == AgentStatus.ONLINE && it.waiting == 0 }
                    phone.policy.onBackground()
                    os.replan.trySend(Unit)
                    // Count from the first renew push on, over `leases` background ttls.
                    val first = withTimeoutOrNull(ttl * 3) { while (receiver.received.get() < 1) kotlinx.coroutines.yield() }
                    assertTrue(first != null, "no renew push within ${ttl * 3} ms")
                    val pushes0 = receiver.received.get()
                    val refreshes0 = os.refreshes.get()
                    val start = System.nanoTime()
                    val windowMs = ttl * leases
                    withTimeoutOrNull(windowMs) { kotlinx.coroutines.awaitCancellation() }
                    val elapsed = (System.nanoTime() - start) / 1e6
                    val pushes = receiver.received.get() - pushes0
                    val refreshes = os.refreshes.get() - refreshes0
                    os.stop()
                    // The agent stayed available on the wakeups alone.
                    assertEquals("online", server.widgetStatus(c))
                    val wakeups = (if (forwardPushes) pushes else 0) + refreshes
                    val perLease = wakeups * ttl / elapsed
                    val perHour = perLease * 3_600_000 / DEFAULT_BACKGROUND_TTL_MS
                    println(
                        "    budget (${if (forwardPushes) "pushes answered" else "pushes lost"}): $pushes push(es) + " +
                            "$refreshes refresh(es) in ${"%.0f".format(elapsed)} ms at ttl $ttl ms = " +
                            "${"%.2f".format(perLease)} per background ttl = ${"%.2f".format(perHour)} per hour at the defaults",
                    )
                    Triple(perHour, pushes, refreshes)
                }
            }
        }
    }

    @Test
    fun inTheBackgroundWithPushAPhoneWakesAtMostTwiceAnHourAtTheDefaults(): Unit = runBlocking {
        val (perHour, pushes, refreshes) = measure(forwardPushes = true, leases = 4)
        assertEquals(0, refreshes, "a renew push answered in time leaves the fallback refresh unused")
        assertTrue(pushes in 3..4, "$pushes renew pushes in 4 background ttls")
        assertTrue(perHour <= 2.0, "$perHour wakeups per hour")
    }

    @Test
    fun whenPushesAreLostTheFallbackRefreshKeepsTheLeaseWithinTheBudget(): Unit = runBlocking {
        val (perHour, _, refreshes) = measure(forwardPushes = false, leases = 4)
        assertTrue(refreshes in 3..4, "$refreshes fallback refreshes in 4 background ttls")
        assertTrue(perHour <= 2.0, "$perHour wakeups per hour")
    }
}
