package dev.presence

import java.util.concurrent.atomic.AtomicBoolean
import kotlinx.coroutines.flow.MutableStateFlow
import kotlinx.coroutines.flow.StateFlow
import kotlinx.coroutines.flow.asStateFlow
import kotlinx.coroutines.flow.first
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeout
import kotlinx.coroutines.withTimeoutOrNull

/**
 * The app's handle on the Presence engine: the generated [PresenceClient] with its snapshots
 * as a [StateFlow] and every call as a suspend function.
 *
 * Snapshots are produced on the engine's own threads and published into [snapshots]; collect
 * it from any dispatcher (`lifecycleScope`, a ViewModel, a foreground service). The suspend
 * functions do not block the caller's thread: the work runs on the engine's runtime.
 *
 * Open one per data dir with [open], keep it for the app's life, and [close] it (or call
 * [shutdown]) when done. After that every call throws [PresenceException.Internal].
 */
class PresenceEngine private constructor(
    /** The generated client, for anything this wrapper does not cover. */
    val client: PresenceClient,
) : AutoCloseable {
    private val state = MutableStateFlow(client.snapshot())
    private val closed = AtomicBoolean(false)
    private val subscription: SnapshotSubscription = client.subscribe(StateFlowListener(state))

    /**
     * The latest snapshot and every later one; replays the current value to new collectors.
     * Updates come from the engine's threads, a moment after the engine publishes them.
     */
    val snapshots: StateFlow<ClientSnapshot> = state.asStateFlow()

    /**
     * The engine's current snapshot, read synchronously: it already shows the effect of a call
     * that has returned (after [close], the last one published).
     */
    val snapshot: ClientSnapshot
        get() = if (closed.get()) state.value else runCatching { client.snapshot() }.getOrElse { state.value }

    /** The id this device is known by (generated once per data dir). */
    val deviceId: String = client.deviceId()

    companion object {
        /** Opens (creating or migrating) the engine's store in `config.dataDir` and starts it. */
        suspend fun open(config: ClientConfig): PresenceEngine = PresenceEngine(PresenceClient.open(config))
    }

    suspend fun login(account: String, email: String, password: String) =
        live { client.login(account, email, password) }

    /** Signs in with a token (a JWT) the customer's own backend issued for the agent. */
    suspend fun loginWithToken(account: String, token: String) =
        live { client.loginWithToken(account, token) }

    suspend fun logout() = live { client.logout() }

    /** Returns once the change is stored durably; delivery continues in the background. */
    suspend fun setStatus(status: AgentStatus) = live { client.setStatus(status) }

    /**
     * A status with a duration, what follows, a custom status or a note; stored durably like
     * [setStatus]. A duration or note out of bounds throws `PresenceException.InvalidInput`.
     */
    suspend fun setStatusWith(request: StatusRequest) = live { client.setStatusWith(request) }

    /** Desktop apps: how long the user has not touched the device (0 on input); null stops it. */
    fun reportIdle(idleMs: Long?) = live { client.reportIdle(idleMs?.coerceAtLeast(0)?.toULong()) }

    /** One page of the agent's status log, newest first; pass [StatusLogPage.next] as [after]. */
    suspend fun statusLog(limit: Int? = null, after: String? = null): StatusLogPage =
        live { client.statusLog(limit?.coerceAtLeast(0)?.toUInt(), after) }

    suspend fun setLifecycle(lifecycle: Lifecycle) = live { client.setLifecycle(lifecycle) }

    suspend fun setNetworkAvailable(available: Boolean) = live { client.setNetworkAvailable(available) }

    /**
     * Hands a push to the engine as it arrived: FCM's `RemoteMessage.data["presence"]`, or
     * UnifiedPush's decrypted message as text (`String(message, Charsets.UTF_8)`).
     */
    suspend fun handlePush(payload: String) = live { client.handlePush(payload) }

    suspend fun backgroundRefresh(deadlineMs: Long) =
        live { client.backgroundRefresh(deadlineMs.coerceAtLeast(0).toULong()) }

    /** The best estimate of the server's clock now (ms), e.g. for a lease countdown. */
    fun serverTimeNow(): Long = live { client.serverTimeNow() }

    /**
     * Registers this device's push token: the FCM registration token, or for UnifiedPush the
     * endpoint URL with the distributor's [keys].
     */
    suspend fun registerPush(provider: PushProvider, token: String, keys: UnifiedPushKeys? = null) =
        live { client.registerPush(provider, token, keys) }

    suspend fun refresh() = live { client.refresh() }

    suspend fun retryWedged(opId: String) = live { client.retryWedged(opId) }

    suspend fun discardWedged(opId: String) = live { client.discardWedged(opId) }

    /** Suspends until a snapshot satisfies [predicate] (the current one counts). */
    suspend fun awaitSnapshot(timeoutMs: Long = 10_000, predicate: (ClientSnapshot) -> Boolean): ClientSnapshot =
        withTimeout(timeoutMs) { snapshots.first(predicate) }

    /**
     * Stops the engine and releases the native client. Calls in flight end with
     * [PresenceException.Internal]; changes they stored are delivered after the next [open].
     * Idempotent.
     */
    suspend fun shutdown() {
        if (!closed.compareAndSet(false, true)) return
        subscription.cancel()
        subscription.close()
        withTimeoutOrNull(SHUTDOWN_TIMEOUT_MS) { client.shutdown() }
        client.close()
    }

    /** [shutdown] for non-suspending callers (`use { }`, `onDestroy`). Blocks briefly. */
    override fun close() {
        if (closed.get()) return
        runBlocking { shutdown() }
    }

    private inline fun <T> live(block: () -> T): T {
        if (closed.get()) throw closedError()
        try {
            return block()
        } catch (e: IllegalStateException) {
            // The native object was released by a concurrent close().
            if (closed.get()) throw closedError()
            throw e
        }
    }

    private fun closedError() = PresenceException.Internal("the client is closed")
}

private const val SHUTDOWN_TIMEOUT_MS = 5_000L

/**
 * Publishes snapshots from the engine's threads into a [MutableStateFlow]. It holds the flow
 * only, not the [PresenceEngine]: the native side keeps this listener alive, and a reference
 * back to the engine would keep an engine that was never closed from being collected.
 */
private class StateFlowListener(private val state: MutableStateFlow<ClientSnapshot>) : PresenceListener {
    override fun onSnapshot(snapshot: ClientSnapshot) {
        state.value = snapshot
    }
}
