package dev.presence.tests

import kotlin.system.exitProcess
import org.junit.runner.Description
import org.junit.runner.JUnitCore
import org.junit.runner.notification.Failure
import org.junit.runner.notification.RunListener
import dev.presence.testing.*

/**
 * Runs the JUnit 4 suites and ends with the line CI reads: `kotlin: N passed, N failed`.
 * Exits non-zero when anything failed.
 */
fun main() {
    val suites = arrayOf<Class<*>>(PresenceTests::class.java, TimedStatusTests::class.java, TokenLoginTests::class.java)
    val core = JUnitCore()
    core.addListener(object : RunListener() {
        private val failed = mutableSetOf<Description>()

        override fun testStarted(description: Description) {
            println("test ${description.methodName} ...")
        }

        override fun testFailure(failure: Failure) {
            failed.add(failure.description)
            println("FAILED ${failure.description.displayName}")
            println(failure.trace.prependIndent("    "))
        }

        override fun testFinished(description: Description) {
            if (description !in failed) println("ok ${description.methodName}")
        }
    })
    val started = System.nanoTime()
    val result = core.run(*suites)
    val secs = (System.nanoTime() - started) / 1e9
    // A failing @BeforeClass fails the suite without running its tests: count it too.
    val failed = result.failureCount
    val passed = result.runCount - result.failures.count { it.description.methodName != null }
    println("ran ${result.runCount} tests in ${"%.1f".format(secs)} s")
    println("kotlin: $passed passed, $failed failed")
    System.out.flush()
    exitProcess(if (failed == 0 && result.runCount > 0) 0 else 1)
}
