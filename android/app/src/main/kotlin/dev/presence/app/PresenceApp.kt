package dev.presence.app

import android.app.Activity
import android.app.Application
import android.content.Context
import android.net.ConnectivityManager
import android.net.Network
import android.os.Build
import android.os.Bundle
import dev.presence.ClientConfig
import dev.presence.DeviceInfo
import dev.presence.Platform
import dev.presence.shell.RefreshPlan
import dev.presence.shell.Shell
import java.io.File
import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.Deferred
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.SupervisorJob
import kotlinx.coroutines.async
import kotlinx.coroutines.launch

/**
 * The process: opens the engine once, tells the shell when the app is in the foreground (any
 * activity started) and when the network comes and goes. Everything it decides is in
 * `dev.presence.shell`; each callback here is one line into it.
 */
class PresenceApp : Application() {
    val scope = CoroutineScope(SupervisorJob() + Dispatchers.Default)
    lateinit var shell: Deferred<Shell>
        private set
    private var started = 0

    companion object {
        const val SERVER_URL = "https://presence.example.com"

        fun from(context: Context): PresenceApp = context.applicationContext as PresenceApp
    }

    override fun onCreate() {
        super.onCreate()
        val config = ClientConfig(
            serverUrl = SERVER_URL,
            dataDir = File(filesDir, "presence").path,
            device = DeviceInfo(Platform.ANDROID, name = Build.MODEL, appVersion = appVersion()),
            tuning = null,
        )
        shell = scope.async { Shell.open(config, scope) }
        registerActivityLifecycleCallbacks(Foreground())
        getSystemService(ConnectivityManager::class.java).registerDefaultNetworkCallback(Connectivity())
    }

    /** Runs [block] with the shell once the engine is open, on the app's scope. */
    fun withShell(block: suspend (Shell) -> Unit) {
        scope.launch { block(shell.await()) }
    }

    /** Hands the policy's plan to JobScheduler (or cancels the job when there is none). */
    fun schedule(plan: RefreshPlan?) = RefreshJobService.schedule(this, plan)

    private fun appVersion(): String = packageManager.getPackageInfo(packageName, 0).versionName ?: "0"

    private inner class Foreground : ActivityLifecycleCallbacks {
        override fun onActivityStarted(activity: Activity) {
            if (started++ == 0) withShell { it.policy.onForeground(); schedule(null) }
        }

        override fun onActivityStopped(activity: Activity) {
            if (--started == 0) withShell { schedule(it.policy.onBackground()) }
        }

        override fun onActivityCreated(activity: Activity, savedInstanceState: Bundle?) {}
        override fun onActivityResumed(activity: Activity) {}
        override fun onActivityPaused(activity: Activity) {}
        override fun onActivitySaveInstanceState(activity: Activity, outState: Bundle) {}
        override fun onActivityDestroyed(activity: Activity) {}
    }

    private inner class Connectivity : ConnectivityManager.NetworkCallback() {
        override fun onAvailable(network: Network) = withShell { it.policy.onNetworkAvailable() }

        override fun onLost(network: Network) = withShell { it.policy.onNetworkLost() }
    }
}
