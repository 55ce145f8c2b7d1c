package dev.presence.app

import android.app.Activity
import android.app.TimePickerDialog
import android.os.Bundle
import android.text.Editable
import android.text.TextWatcher
import android.text.format.DateFormat
import android.widget.Button
import android.widget.EditText
import android.widget.LinearLayout
import android.widget.Switch
import android.widget.TextView
import dev.presence.shell.Messages
import dev.presence.shell.Option
import dev.presence.shell.Shell
import dev.presence.shell.ToggleState
import java.time.LocalTime
import kotlinx.coroutines.Job
import kotlinx.coroutines.launch

/**
 * The toggle screen: draws the shell's [ToggleState] and sends taps to the view model. Plain
 * framework views, so the shell's behaviour is all in `dev.presence.shell`.
 */
class MainActivity : Activity() {
    private lateinit var status: TextView
    private lateinit var about: TextView
    private lateinit var menu: LinearLayout
    private lateinit var note: EditText
    private lateinit var noteLeft: TextView
    private lateinit var detail: TextView
    private var shownOptions: List<Option> = emptyList()
    private lateinit var outbox: LinearLayout
    private lateinit var signIn: LinearLayout
    private var collecting: Job? = null
    @Volatile private var shell: Shell? = null
    private val app get() = PresenceApp.from(this)

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        val root = LinearLayout(this).apply { orientation = LinearLayout.VERTICAL; setPadding(48, 48, 48, 48) }
        status = TextView(this).apply { textSize = 24f }
        about = TextView(this)
        menu = LinearLayout(this).apply { orientation = LinearLayout.VERTICAL }
        note = EditText(this).apply {
            hint = "Note for your team (sent with your next choice)"
            addTextChangedListener(object : TextWatcher {
                // Synchronous, so the counter follows every keystroke in order.
                override fun afterTextChanged(e: Editable) {
                    shell?.toggle?.editNote(e.toString())
                }
                override fun beforeTextChanged(s: CharSequence, start: Int, count: Int, after: Int) {}
                override fun onTextChanged(s: CharSequence, start: Int, before: Int, count: Int) {}
            })
        }
        noteLeft = TextView(this)
        detail = TextView(this)
        outbox = LinearLayout(this).apply { orientation = LinearLayout.VERTICAL }
        signIn = signInForm()
        root.addView(signIn)
        root.addView(status)
        root.addView(about)
        root.addView(note)
        root.addView(noteLeft)
        root.addView(button("Save note") { withNote { it.toggle.saveNote() } })
        root.addView(menu)
        root.addView(Switch(this).apply {
            text = "Stay online without push"
            setOnCheckedChangeListener { _, on -> if (on) KeepAliveService.start(context) else KeepAliveService.stop(context) }
        })
        root.addView(detail)
        root.addView(outbox)
        root.addView(button("Sign out") { app.withShell { it.toggle.signOut() } })
        setContentView(root)
    }

    override fun onStart() {
        super.onStart()
        collecting = app.scope.launch {
            val opened = app.shell.await().also { shell = it }
            opened.toggle.state.collect { runOnUiThread { render(it) } }
        }
    }

    override fun onStop() {
        collecting?.cancel()
        super.onStop()
    }

    private fun render(s: ToggleState) {
        signIn.visibility = if (s.signedIn) android.view.View.GONE else android.view.View.VISIBLE
        status.text = if (s.pending) "${s.headline} (sending…)" else s.headline
        about.text = listOfNotNull(s.custom, s.note, s.cause).joinToString("\n")
        noteLeft.text = s.noteLeft
        noteLeft.setTextColor(if (s.noteTooLong) 0xFFB00020.toInt() else 0xFF606060.toInt())
        if (s.options != shownOptions) {
            shownOptions = s.options
            menu.removeAllViews()
            for (o in s.options) menu.addView(button(o.label) { pick(o) })
        }
        detail.text = listOfNotNull(
            s.connection,
            s.chatbox?.let { "${it.text}: ${it.reason}" },
            s.chatbox?.message,
            if (s.waiting > 0) "${s.waiting} change(s) waiting" else null,
            s.signedOutBecause ?: s.error,
        ).joinToString("\n")
        outbox.removeAllViews()
        for (w in s.wedged) {
            outbox.addView(TextView(this).apply { text = w.text })
            outbox.addView(button("Retry") { app.withShell { it.toggle.retry(w.opId) } })
            outbox.addView(button("Discard") { app.withShell { it.toggle.discard(w.opId) } })
        }
    }

    /** A menu row: sends its choice, or first asks for the time of day. */
    private fun pick(o: Option) = when (o) {
        is Option.Send -> withNote { it.toggle.choose(o.choice) }
        is Option.AskTime -> {
            val now = LocalTime.now()
            TimePickerDialog(this, { _, h, m ->
                withNote { it.toggle.chooseUntil(o.status, LocalTime.of(h, m)) }
            }, now.hour, now.minute, DateFormat.is24HourFormat(this)).show()
        }
    }

    /**
     * Runs [send] with the note field's text as the view model's note; once it went out (the
     * view model cleared its copy), clears the field too.
     */
    private fun withNote(send: suspend (Shell) -> Boolean) {
        val text = note.text.toString()
        app.withShell {
            it.toggle.editNote(text)
            if (send(it)) runOnUiThread { note.text.clear() }
        }
    }

    private fun signInForm(): LinearLayout {
        val account = EditText(this).apply { hint = "Account" }
        val email = EditText(this).apply { hint = "Email" }
        val password = EditText(this).apply {
            hint = "Password"
            inputType = android.text.InputType.TYPE_CLASS_TEXT or android.text.InputType.TYPE_TEXT_VARIATION_PASSWORD
        }
        return LinearLayout(this).apply {
            orientation = LinearLayout.VERTICAL
            addView(account)
            addView(email)
            addView(password)
            addView(button("Sign in") {
                val (a, e, p) = Triple(account.text.toString(), email.text.toString(), password.text.toString())
                app.withShell { it.toggle.signIn(a, e, p) }
            })
        }
    }

    private fun button(label: String, onClick: () -> Unit) =
        Button(this).apply { text = label; setOnClickListener { onClick() } }
}
