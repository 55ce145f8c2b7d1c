package dev.presence.app

import android.content.BroadcastReceiver
import android.content.Context
import android.content.Intent

/** After a reboot: the engine restores its session when the app opens; plan the next refresh. */
class BootReceiver : BroadcastReceiver() {
    override fun onReceive(context: Context, intent: Intent) {
        if (intent.action != Intent.ACTION_BOOT_COMPLETED) return
        val app = PresenceApp.from(context)
        app.withShell { app.schedule(it.policy.onBackground()) }
    }
}
