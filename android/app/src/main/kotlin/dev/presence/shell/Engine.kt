package dev.presence.shell

import dev.presence.AgentStatus
import dev.presence.ClientConfig
import dev.presence.ClientSnapshot
import dev.presence.Lifecycle
import dev.presence.PresenceEngine
import dev.presence.PushProvider
import dev.presence.StatusRequest
import dev.presence.UnifiedPushKeys
import kotlinx.coroutines.flow.StateFlow

/**
 * What the shell needs from the Presence engine, and nothing more. [RustEngine] is the real
 * one (the generated bindings over libpresence_ffi); the shell's tests use it too, against a
 * real server. Everything in `dev.presence.shell` is free of Android classes, so it runs and
 * is tested on a plain JVM.
 */
interface Engine {
    /** The latest snapshot and every later one. */
    val snapshots: StateFlow<ClientSnapshot>

    /** The engine's current snapshot, read synchronously. */
    val snapshot: ClientSnapshot

    suspend fun login(account: String, email: String, password: String)
    suspend fun logout()
    suspend fun setStatus(status: AgentStatus)

    /** A status with its end, what follows, custom status and note (through the outbox). */
    suspend fun setStatusWith(request: StatusRequest)
    suspend fun setLifecycle(lifecycle: Lifecycle)
    suspend fun setNetworkAvailable(available: Boolean)
    suspend fun handlePush(payload: String)
    suspend fun backgroundRefresh(deadlineMs: Long)
    suspend fun registerPush(provider: PushProvider, token: String, keys: UnifiedPushKeys?)
    suspend fun retryWedged(opId: String)
    suspend fun discardWedged(opId: String)

    /** The server's clock now (ms), as the engine estimates it. */
    fun serverTimeNow(): Long

    fun close()
}

/** [Engine] over the bindings' [PresenceEngine]. */
class RustEngine(val inner: PresenceEngine) : Engine {
    companion object {
        suspend fun open(config: ClientConfig): RustEngine = RustEngine(PresenceEngine.open(config))
    }

    override val snapshots: StateFlow<ClientSnapshot> get() = inner.snapshots
    override val snapshot: ClientSnapshot get() = inner.snapshot

    override suspend fun login(account: String, email: String, password: String) = inner.login(account, email, password)
    override suspend fun logout() = inner.logout()
    override suspend fun setStatus(status: AgentStatus) = inner.setStatus(status)
    override suspend fun setStatusWith(request: StatusRequest) = inner.setStatusWith(request)
    override suspend fun setLifecycle(lifecycle: Lifecycle) = inner.setLifecycle(lifecycle)
    override suspend fun setNetworkAvailable(available: Boolean) = inner.setNetworkAvailable(available)
    override suspend fun handlePush(payload: String) = inner.handlePush(payload)
    override suspend fun backgroundRefresh(deadlineMs: Long) = inner.backgroundRefresh(deadlineMs)
    override suspend fun registerPush(provider: PushProvider, token: String, keys: UnifiedPushKeys?) =
        inner.registerPush(provider, token, keys)
    override suspend fun retryWedged(opId: String) = inner.retryWedged(opId)
    override suspend fun discardWedged(opId: String) = inner.discardWedged(opId)
    override fun serverTimeNow(): Long = inner.serverTimeNow()
    override fun close() = inner.close()
}
