package dev.presence.app.push

import com.google.firebase.messaging.FirebaseMessagingService
import com.google.firebase.messaging.RemoteMessage
import dev.presence.PushProvider
import dev.presence.app.PresenceApp
import kotlinx.coroutines.runBlocking

/**
 * FCM. Built by Gradle only: Firebase comes from Google's repository. The message is handled
 * before onMessageReceived returns (a renew push's heartbeat included), since FCM may stop
 * the process right after.
 */
class FcmService : FirebaseMessagingService() {
    override fun onNewToken(token: String) = PresenceApp.from(this).withShell { it.registration.onNewToken(PushProvider.FCM, token) }

    override fun onMessageReceived(message: RemoteMessage) = runBlocking { PresenceApp.from(this@FcmService).shell.await().push.onFcmMessage(message.data); Unit }
}
