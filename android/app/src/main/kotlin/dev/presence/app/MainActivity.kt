package dev.presence.app

import android.app.Activity
import android.os.Bundle
import android.widget.Button
import android.widget.EditText
import android.widget.LinearLayout
import android.widget.Switch
import android.widget.TextView
import dev.presence.AgentStatus
import dev.presence.shell.Messages
import dev.presence.shell.ToggleState
import kotlinx.coroutines.Job
import kotlinx.coroutines.launch

/**
 * The toggle screen: draws the shell's [ToggleState] and sends taps to the view model. Plain
 * framework views, so the shell's behaviour is all in `dev.presence.shell`.
 */
class MainActivity : Activity() {
    private lateinit var status: TextView
    private lateinit var detail: TextView
    private lateinit var outbox: LinearLayout
    private lateinit var signIn: LinearLayout
    private var collecting: Job? = null
    private val app get() = PresenceApp.from(this)

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        val root = LinearLayout(this).apply { orientation = LinearLayout.VERTICAL; setPadding(48, 48, 48, 48) }
        status = TextView(this).apply { textSize = 24f }
        detail = TextView(this)
        outbox = LinearLayout(this).apply { orientation = LinearLayout.VERTICAL }
        signIn = signInForm()
        root.addView(signIn)
        root.addView(status)
        for (s in AgentStatus.entries) {
            root.addView(button(Messages.status(s)) { app.withShell { it.toggle.choose(s) } })
        }
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
        collecting = app.scope.launch { app.shell.await().toggle.state.collect { runOnUiThread { render(it) } } }
    }

    override fun onStop() {
        collecting?.cancel()
        super.onStop()
    }

    private fun render(s: ToggleState) {
        signIn.visibility = if (s.signedIn) android.view.View.GONE else android.view.View.VISIBLE
        val wanted = s.wanted?.let(Messages::status) ?: "—"
        status.text = if (s.pending) "$wanted (sending…)" else wanted
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
