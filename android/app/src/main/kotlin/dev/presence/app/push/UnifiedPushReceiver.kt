package dev.presence.app.push

import android.content.Context
import dev.presence.PushProvider
import dev.presence.UnifiedPushKeys
import dev.presence.app.PresenceApp
import kotlinx.coroutines.runBlocking
import org.unifiedpush.android.connector.MessagingReceiver
import org.unifiedpush.android.connector.data.PushEndpoint
import org.unifiedpush.android.connector.data.PushMessage

/**
 * UnifiedPush (connector 3.x, which decrypts RFC 8291 messages with the keys it made). Built by
 * Gradle only: the connector's AAR needs AndroidX from Google's repository.
 */
class UnifiedPushReceiver : MessagingReceiver() {
    override fun onNewEndpoint(context: Context, endpoint: PushEndpoint, instance: String) =
        PresenceApp.from(context).withShell { it.registration.onNewToken(PushProvider.UNIFIEDPUSH, endpoint.url, endpoint.pubKeySet?.let { k -> UnifiedPushKeys(k.pubKey, k.auth) }) }

    override fun onMessage(context: Context, message: PushMessage, instance: String) =
        runBlocking { PresenceApp.from(context).shell.await().push.onUnifiedPushMessage(message.content); Unit }

    override fun onUnregistered(context: Context, instance: String) = PresenceApp.from(context).withShell { it.registration.onTokenRevoked() }
}
