package dev.presence.shell

import dev.presence.PushProvider
import dev.presence.UnifiedPushKeys
import kotlinx.coroutines.flow.MutableStateFlow
import kotlinx.coroutines.flow.StateFlow
import kotlinx.coroutines.flow.asStateFlow

/** The push channel this device registered, if any. */
data class PushChannel(val provider: PushProvider, val token: String)

/**
 * The push-token flow: a provider hands over a new token (FCM's `onNewToken`, UnifiedPush's
 * `onNewEndpoint`) and it goes to the engine's `registerPush`, which stores it, sends it and
 * sends it again at every later login. The same token twice is registered once. A token the
 * engine refuses (UnifiedPush without keys) is reported and not kept.
 */
class PushRegistration(private val engine: Engine) {
    private val channel = MutableStateFlow<PushChannel?>(null)
    private val refused = MutableStateFlow<String?>(null)

    /** The registered channel; null until a provider gave a token. */
    val current: StateFlow<PushChannel?> = channel.asStateFlow()

    /** Why the latest token was refused, as a person reads it. */
    val problem: StateFlow<String?> = refused.asStateFlow()

    suspend fun onNewToken(provider: PushProvider, token: String, keys: UnifiedPushKeys? = null): Boolean {
        val next = PushChannel(provider, token)
        if (channel.value == next) return true
        return try {
            engine.registerPush(provider, token, keys)
            channel.value = next
            refused.value = null
            true
        } catch (e: Exception) {
            if (e is kotlinx.coroutines.CancellationException) throw e
            refused.value = Messages.error(e)
            false
        }
    }

    /** The provider took the token back (UnifiedPush `onUnregistered`). */
    fun onTokenRevoked() {
        channel.value = null
    }
}
