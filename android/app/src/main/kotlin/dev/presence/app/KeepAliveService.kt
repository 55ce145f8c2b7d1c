package dev.presence.app

import android.app.Notification
import android.app.NotificationChannel
import android.app.NotificationManager
import android.app.Service
import android.content.Context
import android.content.Intent
import android.content.pm.ServiceInfo
import android.os.Build
import android.os.IBinder

/**
 * Opt-in "stay online" for a device without push: a `dataSync` foreground service that keeps
 * the active lease (heartbeats) while the app is in the background. Android 15 gives
 * `dataSync` services 6 hours a day; [onTimeout] is when that runs out.
 */
class KeepAliveService : Service() {
    companion object {
        private const val CHANNEL = "presence-keep-alive"
        private const val NOTIFICATION_ID = 1

        fun start(context: Context) = context.startForegroundService(Intent(context, KeepAliveService::class.java))

        fun stop(context: Context) = context.stopService(Intent(context, KeepAliveService::class.java))
    }

    override fun onStartCommand(intent: Intent?, flags: Int, startId: Int): Int {
        val notification = notification()
        if (Build.VERSION.SDK_INT >= Build.VERSION_CODES.Q) {
            startForeground(NOTIFICATION_ID, notification, ServiceInfo.FOREGROUND_SERVICE_TYPE_DATA_SYNC)
        } else {
            startForeground(NOTIFICATION_ID, notification)
        }
        PresenceApp.from(this).withShell { it.policy.onKeepAliveStarted() }
        return START_NOT_STICKY
    }

    override fun onTimeout(startId: Int, fgsType: Int) = stopSelf()

    override fun onDestroy() {
        val app = PresenceApp.from(this)
        app.withShell { app.schedule(it.policy.onKeepAliveStopped()) }
        super.onDestroy()
    }

    override fun onBind(intent: Intent?): IBinder? = null

    private fun notification(): Notification {
        val manager = getSystemService(NotificationManager::class.java)
        manager.createNotificationChannel(NotificationChannel(CHANNEL, "Staying online", NotificationManager.IMPORTANCE_LOW))
        return Notification.Builder(this, CHANNEL)
            .setContentTitle("Presence keeps you online")
            .setSmallIcon(android.R.drawable.stat_notify_sync)
            .setOngoing(true)
            .build()
    }
}
