package dev.presence.app

import kotlin.system.exitProcess
import org.junit.runner.JUnitCore
import org.junit.runner.notification.Failure
import org.junit.runner.notification.RunListener

/** Runs the glue's Robolectric tests; ends with `robolectric: N passed, N failed`. */
fun main() {
    val core = JUnitCore()
    core.addListener(object : RunListener() {
        override fun testFailure(failure: Failure) {
            println("FAILED ${failure.description.displayName}")
            println(failure.trace.prependIndent("    "))
        }
    })
    val result = core.run(GlueTests::class.java, ToggleScreenTests::class.java)
    val failed = result.failureCount
    println("robolectric: ${result.runCount - failed} passed, $failed failed")
    System.out.flush()
    exitProcess(if (failed == 0 && result.runCount > 0) 0 else 1)
}
