package dev.presence.shell

import dev.presence.Lifecycle
import dev.presence.PresenceException
import dev.presence.SessionState
import kotlinx.coroutines.flow.first
import kotlinx.coroutines.withTimeoutOrNull

/**
 * A background refresh for the OS to run (JobScheduler here, BGAppRefreshTask on iOS): not
 * earlier than [delayMs] from now, and finished within [deadlineMs] once started.
 */
data class RefreshPlan(val delayMs: Long, val deadlineMs: Long, val why: String)

/** How a refresh ended: inside its deadline or not, and what is left. */
data class RefreshResult(val finished: Boolean, val elapsedMs: Long, val detail: String?)

/** The policy's numbers; the defaults are what a phone runs. */
data class RefreshTimings(
    /** How long a refresh may run: inside iOS's ~30 s and well inside a JobService's limit. */
    val deadlineMs: Long = 25_000,
    /** With push, the fallback refresh runs this long before the lease ends (at most). */
    val fallbackLeadMs: Long = 120_000,
    /** Without push, queued changes are retried this often in the background. */
    val queuedRetryMs: Long = 30 * 60_000,
    /** How long going to the background waits for the background lease before planning. */
    val settleMs: Long = 5_000,
)

/**
 * Foreground/background, connectivity and the opt-in keep-alive service, mapped onto the
 * engine, and the one decision the OS glue cannot make: when to schedule the next background
 * refresh, and with what deadline.
 *
 * The phone's background budget is spent on wakeups (pushes plus refreshes). With push, the
 * server renews the background lease by a renew push once per background ttl (2 an hour at
 * the defaults), so the refresh is only a fallback placed after the expected renew and before
 * the lease ends; every push moves the lease and so the plan, and a refresh that is replanned
 * in time never runs. Without push there is no lease to keep: the refresh only carries queued
 * changes, at most twice an hour.
 */
class LifecyclePolicy(
    private val engine: Engine,
    private val push: PushRegistration,
    val timings: RefreshTimings = RefreshTimings(),
) {
    @Volatile var foreground: Boolean = false
        private set

    @Volatile var keepAlive: Boolean = false
        private set

    /** An activity of the app is visible. */
    suspend fun onForeground() {
        foreground = true
        engine.setLifecycle(Lifecycle.ACTIVE)
    }

    /**
     * No activity is visible: the background lease, unless the keep-alive service runs. The
     * engine renews the lease in background mode at once; the plan is made from that lease
     * (waiting for it at most [RefreshTimings.settleMs]).
     */
    suspend fun onBackground(): RefreshPlan? {
        foreground = false
        if (!keepAlive) {
            val before = engine.snapshot.leaseUntil
            engine.setLifecycle(Lifecycle.BACKGROUND)
            withTimeoutOrNull(timings.settleMs) {
                engine.snapshots.first { it.leaseUntil != before || it.session.state != SessionState.ACTIVE }
            }
        }
        return plan()
    }

    /** The opt-in foreground service started: keep the active lease while it runs. */
    suspend fun onKeepAliveStarted() {
        keepAlive = true
        engine.setLifecycle(Lifecycle.ACTIVE)
    }

    /** The service stopped (by the user, or the OS's time limit for `dataSync`). */
    suspend fun onKeepAliveStopped(): RefreshPlan? {
        keepAlive = false
        if (!foreground) engine.setLifecycle(Lifecycle.BACKGROUND)
        return plan()
    }

    /** Connectivity callbacks: while lost the engine attempts nothing; on return it retries at once. */
    suspend fun onNetworkAvailable() = engine.setNetworkAvailable(true)

    suspend fun onNetworkLost() = engine.setNetworkAvailable(false)

    /** The refresh to schedule now, or null for none (cancel any scheduled one). */
    fun plan(): RefreshPlan? {
        val s = engine.snapshot
        if (s.session.state != SessionState.ACTIVE || foreground || keepAlive) return null
        if (push.current.value != null) {
            val lease = s.leaseUntil ?: return RefreshPlan(0, timings.deadlineMs, "no lease yet")
            val left = (lease - engine.serverTimeNow()).coerceAtLeast(0)
            val lead = minOf(timings.fallbackLeadMs, left / 10)
            return RefreshPlan(left - lead, timings.deadlineMs, "fallback if the renew push does not come")
        }
        if (s.outbox.pending > 0u) {
            return RefreshPlan(timings.queuedRetryMs, timings.deadlineMs, "deliver ${s.outbox.pending} queued change(s)")
        }
        return null
    }

    /** What a scheduled refresh job does: [refresh], then the plan for the next one. */
    suspend fun refreshThenPlan(deadlineMs: Long = timings.deadlineMs): RefreshPlan? {
        refresh(deadlineMs)
        return plan()
    }

    /**
     * Runs one background refresh (a heartbeat and delivery of queued changes) and returns
     * inside [deadlineMs] whatever the network does, so the OS's task can be completed in time.
     */
    suspend fun refresh(deadlineMs: Long = timings.deadlineMs): RefreshResult {
        val started = System.nanoTime()
        var detail: String? = "Did not finish in time."
        withTimeoutOrNull(deadlineMs) {
            detail = try {
                engine.backgroundRefresh(deadlineMs)
                null
            } catch (e: PresenceException) {
                Messages.error(e)
            }
        }
        val elapsed = (System.nanoTime() - started) / 1_000_000
        return RefreshResult(finished = detail == null, elapsedMs = elapsed, detail = detail)
    }
}
