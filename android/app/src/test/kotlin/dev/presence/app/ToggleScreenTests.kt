package dev.presence.app

import android.app.TimePickerDialog
import android.os.Looper
import android.view.View
import android.view.ViewGroup
import android.widget.Button
import android.widget.EditText
import android.widget.TextView
import org.junit.Assert.assertEquals
import org.junit.Assert.assertTrue
import org.junit.Test
import org.junit.runner.RunWith
import org.robolectric.Robolectric
import org.robolectric.RobolectricTestRunner
import org.robolectric.Shadows.shadowOf
import org.robolectric.annotation.Config
import org.robolectric.shadows.ShadowDialog

/**
 * The toggle screen's glue on Robolectric's Android 16, over the real engine `PresenceApp`
 * opens: the menu rows drawn from the view model's options, "until…" asking for a time before
 * anything is sent, and the note's counter following what is typed. What the rows send is
 * pinned by the shell's own tests; this checks the Activity wires them.
 */
@RunWith(RobolectricTestRunner::class)
@Config(sdk = [36], manifest = Config.NONE, application = PresenceApp::class)
class ToggleScreenTests {
    @Test
    fun theMenuShowsTheTimedChoicesAndUntilAsksForATimeFirst() {
        val activity = Robolectric.buildActivity(MainActivity::class.java).setup().get()
        val root = activity.findViewById<ViewGroup>(android.R.id.content)
        awaitView(root) { it is Button && it.text == "Busy for 15 min" }
        val labels = views(root).filterIsInstance<Button>().map { it.text.toString() }
        assertTrue(
            labels.toString(),
            labels.containsAll(
                listOf(
                    "Online", "Busy", "Busy for 15 min", "Busy for 30 min", "Busy for 1 h", "Busy until…",
                    "Offline", "Offline for 15 min", "Offline for 30 min", "Offline for 1 h", "Offline until…",
                ),
            ),
        )
        val until = views(root).first { it is Button && it.text == "Offline until…" }
        until.performClick()
        shadowOf(Looper.getMainLooper()).idle()
        val dialog = ShadowDialog.getLatestDialog()
        assertTrue("a time picker, got $dialog", dialog is TimePickerDialog && dialog.isShowing)
    }

    @Test
    fun theNotesCounterFollowsWhatIsTyped() {
        val activity = Robolectric.buildActivity(MainActivity::class.java).setup().get()
        val root = activity.findViewById<ViewGroup>(android.R.id.content)
        awaitView(root) { it is TextView && it.text == "100 characters left" }
        val note = views(root).filterIsInstance<EditText>().first { it.hint?.startsWith("Note") == true }
        note.setText("At the dentist")
        val left = awaitView(root) { it is TextView && it !is EditText && it.text == "86 characters left" } as TextView
        note.setText("x".repeat(101))
        awaitView(root) { it === left && left.text == "The note has 101 characters; at most 100 fit." }
        assertEquals(0xFFB00020.toInt(), left.currentTextColor)
    }

    /** Every view under [root], depth first. */
    private fun views(root: View): List<View> =
        if (root is ViewGroup) listOf(root) + (0 until root.childCount).flatMap { views(root.getChildAt(it)) } else listOf(root)

    /**
     * Runs the main looper until a view under [root] matches [p] (the engine opens and the
     * view model's state arrives from other threads), within 15 s.
     */
    private fun awaitView(root: View, p: (View) -> Boolean): View {
        val deadline = System.nanoTime() + 15_000_000_000L
        while (true) {
            shadowOf(Looper.getMainLooper()).idle()
            views(root).firstOrNull(p)?.let { return it }
            check(System.nanoTime() < deadline) {
                "no such view within 15 s; texts: ${views(root).filterIsInstance<TextView>().map { it.text }}"
            }
            Thread.sleep(10)
        }
    }
}
