package dev.presence.app

import android.app.Application
import android.app.NotificationManager
import android.app.job.JobInfo
import android.app.job.JobScheduler
import android.content.Intent
import dev.presence.shell.RefreshPlan
import org.junit.Assert.assertEquals
import org.junit.Assert.assertNotNull
import org.junit.Assert.assertTrue
import org.junit.Test
import org.junit.runner.RunWith
import org.robolectric.Robolectric
import org.robolectric.RobolectricTestRunner
import org.robolectric.RuntimeEnvironment
import org.robolectric.Shadows.shadowOf
import org.robolectric.annotation.Config

/**
 * The OS glue on Robolectric's Android 16 (API 36): what it hands to JobScheduler and the
 * notification system. Robolectric simulates the framework; it does not show what a device's
 * scheduler, Doze or foreground-service rules do with it.
 */
@RunWith(RobolectricTestRunner::class)
@Config(sdk = [36], manifest = Config.NONE, application = Application::class)
class GlueTests {
    private val app: Application get() = RuntimeEnvironment.getApplication()
    private val jobs: JobScheduler get() = app.getSystemService(JobScheduler::class.java)

    @Test
    fun aRefreshPlanBecomesOneJobWithItsDelayAndDeadline() {
        RefreshJobService.schedule(app, RefreshPlan(delayMs = 1_680_000, deadlineMs = 25_000, why = "fallback"))
        val job = jobs.allPendingJobs.single()
        assertEquals(1_680_000L, job.minLatencyMillis)
        assertEquals(1_705_000L, job.maxExecutionDelayMillis)
        assertTrue(job.isPersisted)
        assertEquals(RefreshJobService::class.java.name, job.service.className)
        @Suppress("DEPRECATION")
        assertEquals(JobInfo.NETWORK_TYPE_ANY, job.networkType)
    }

    @Test
    fun aNewPlanReplacesTheJobAndNoPlanCancelsIt() {
        RefreshJobService.schedule(app, RefreshPlan(60_000, 25_000, "first"))
        RefreshJobService.schedule(app, RefreshPlan(120_000, 25_000, "second"))
        assertEquals(listOf(120_000L), jobs.allPendingJobs.map { it.minLatencyMillis })
        RefreshJobService.schedule(app, null)
        assertTrue(jobs.allPendingJobs.isEmpty())
    }

    @Test
    fun theBootReceiverIgnoresOtherBroadcasts() {
        BootReceiver().onReceive(app, Intent(Intent.ACTION_TIME_CHANGED))
        assertTrue(jobs.allPendingJobs.isEmpty())
    }

    @Test
    @Config(application = PresenceApp::class)
    fun theKeepAliveServiceRunsInTheForegroundWithALowImportanceChannel() {
        val service = Robolectric.buildService(KeepAliveService::class.java).create().startCommand(0, 1).get()
        val shadow = shadowOf(service)
        assertNotNull("no foreground notification", shadow.lastForegroundNotification)
        val channel = app.getSystemService(NotificationManager::class.java).getNotificationChannel("presence-keep-alive")
        assertEquals(NotificationManager.IMPORTANCE_LOW, channel.importance)
        service.onTimeout(1, android.content.pm.ServiceInfo.FOREGROUND_SERVICE_TYPE_DATA_SYNC)
        assertTrue("onTimeout must stop the service", shadow.isStoppedBySelf)
    }
}
