package dev.presence.app

import android.app.job.JobInfo
import android.app.job.JobParameters
import android.app.job.JobScheduler
import android.app.job.JobService
import android.content.ComponentName
import android.content.Context
import android.os.Build
import dev.presence.shell.RefreshPlan
import kotlinx.coroutines.Job
import kotlinx.coroutines.launch

/**
 * The background refresh: one JobScheduler job, planned by the shell's policy. The job runs
 * the shell's refresh (a heartbeat and queued changes, inside the plan's deadline), then
 * schedules the next one.
 */
class RefreshJobService : JobService() {
    private var running: Job? = null

    companion object {
        private const val JOB_ID = 1

        fun schedule(context: Context, plan: RefreshPlan?) {
            val jobs = context.getSystemService(JobScheduler::class.java)
            if (plan == null) return jobs.cancel(JOB_ID)
            val job = JobInfo.Builder(JOB_ID, ComponentName(context, RefreshJobService::class.java))
                .setMinimumLatency(plan.delayMs)
                .setOverrideDeadline(plan.delayMs + plan.deadlineMs)
                .setRequiredNetworkType(JobInfo.NETWORK_TYPE_ANY)
                .setPersisted(true)
            if (Build.VERSION.SDK_INT >= Build.VERSION_CODES.P) job.setEstimatedNetworkBytes(4_096, 1_024)
            jobs.schedule(job.build())
        }
    }

    override fun onStartJob(params: JobParameters): Boolean {
        val app = PresenceApp.from(this)
        running = app.scope.launch {
            app.schedule(app.shell.await().policy.refreshThenPlan())
            jobFinished(params, false)
        }
        return true
    }

    override fun onStopJob(params: JobParameters): Boolean {
        running?.cancel()
        return true
    }
}

