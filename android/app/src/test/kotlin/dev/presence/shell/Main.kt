package dev.presence.shell

import kotlin.system.exitProcess
import org.junit.runner.Description
import org.junit.runner.JUnitCore
import org.junit.runner.notification.Failure
import org.junit.runner.notification.RunListener

/** Runs the shell's JUnit 4 tests and ends with the line CI reads: `android: N passed, N failed`. */
fun main() {
    val core = JUnitCore()
    core.addListener(object : RunListener() {
        private val failed = mutableSetOf<Description>()

        override fun testStarted(description: Description) = println("test ${description.methodName} ...")

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
    val result = core.run(ShellTests::class.java, BudgetTests::class.java, ChoicesTests::class.java, TimedStatusTests::class.java)
    val failed = result.failureCount
    val passed = result.runCount - result.failures.count { it.description.methodName != null }
    println("ran ${result.runCount} tests in ${"%.1f".format((System.nanoTime() - started) / 1e9)} s")
    println("android: $passed passed, $failed failed")
    System.out.flush()
    exitProcess(if (failed == 0 && result.runCount > 0) 0 else 1)
}
