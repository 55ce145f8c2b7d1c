package dev.presence.shell

import dev.presence.ClientConfig
import kotlinx.coroutines.CoroutineScope

/**
 * The platform-free half of the Android app, one per process: the engine and the four pieces
 * the OS glue calls into. The glue (Activity, receivers, services) holds one of these and
 * forwards each OS callback in one line.
 */
class Shell(
    val engine: Engine,
    scope: CoroutineScope,
    timings: RefreshTimings = RefreshTimings(),
    time: DeviceTime = DeviceTime.System,
) {
    val toggle = ToggleViewModel(engine, scope, time)
    val registration = PushRegistration(engine)
    val push = PushRouter(engine)
    val policy = LifecyclePolicy(engine, registration, timings)

    companion object {
        suspend fun open(
            config: ClientConfig,
            scope: CoroutineScope,
            timings: RefreshTimings = RefreshTimings(),
            time: DeviceTime = DeviceTime.System,
        ): Shell = Shell(RustEngine.open(config), scope, timings, time)
    }
}
