package dev.presence.shell

import dev.presence.AgentStatus
import dev.presence.ClientSnapshot
import dev.presence.Connection
import dev.presence.SessionState
import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.flow.MutableStateFlow
import kotlinx.coroutines.flow.SharingStarted
import kotlinx.coroutines.flow.StateFlow
import kotlinx.coroutines.flow.combine
import kotlinx.coroutines.flow.stateIn

/** One row of the outbox list: a change the server refused, with what the user can do. */
data class WedgedChange(val opId: String, val text: String)

/** The chat box line: what the website shows, why, and the team's message if one is set. */
data class ChatboxLine(val text: String, val reason: String, val message: String?)

/**
 * Everything the toggle screen draws. [wanted] is what the agent chose (shown at once);
 * [confirmed] is what the server has; [pending] while they may differ.
 */
data class ToggleState(
    val signedIn: Boolean,
    val signedOutBecause: String?,
    val wanted: AgentStatus?,
    val confirmed: AgentStatus?,
    val pending: Boolean,
    val connection: String,
    val connectionState: Connection,
    val chatbox: ChatboxLine?,
    val waiting: Int,
    val wedged: List<WedgedChange>,
    val error: String?,
)

/**
 * The toggle screen's state and actions, free of Android: the Activity renders [state] and
 * calls the suspend actions from its own scope. Actions never throw; a failure becomes the
 * [ToggleState.error] a person reads.
 */
class ToggleViewModel(private val engine: Engine, scope: CoroutineScope) {
    private val actionError = MutableStateFlow<String?>(null)

    val state: StateFlow<ToggleState> = combine(engine.snapshots, actionError) { s, e -> render(s, e) }
        .stateIn(scope, SharingStarted.Eagerly, render(engine.snapshot, null))

    /** The state for the engine's snapshot right now (what [state] shows a moment later). */
    fun current(): ToggleState = render(engine.snapshot, actionError.value)

    suspend fun signIn(account: String, email: String, password: String): Boolean =
        act { engine.login(account.trim(), email.trim(), password) }

    /** Signs out: the session ends on the server at once, even if the request is still queued. */
    suspend fun signOut(): Boolean = act { engine.logout() }

    /** Returns once the choice is stored on the device; the engine delivers it. */
    suspend fun choose(status: AgentStatus): Boolean = act { engine.setStatus(status) }

    /** Puts a refused change back in the queue (after the cause was fixed). */
    suspend fun retry(opId: String): Boolean = act { engine.retryWedged(opId) }

    /** Drops a refused change. */
    suspend fun discard(opId: String): Boolean = act { engine.discardWedged(opId) }

    fun dismissError() {
        actionError.value = null
    }

    private suspend fun act(block: suspend () -> Unit): Boolean = try {
        block()
        actionError.value = null
        true
    } catch (e: Exception) {
        if (e is kotlinx.coroutines.CancellationException) throw e
        actionError.value = Messages.error(e)
        false
    }

    private fun render(s: ClientSnapshot, actionError: String?): ToggleState {
        val signedIn = s.session.state == SessionState.ACTIVE
        val lastError = s.lastError?.let(Messages::lastError)
        return ToggleState(
            signedIn = signedIn,
            signedOutBecause = if (s.session.state == SessionState.EXPIRED) lastError ?: "You were signed out." else null,
            wanted = s.status?.current,
            confirmed = s.status?.confirmed,
            pending = s.status?.pending == true,
            connection = Messages.connection(s.connection),
            connectionState = s.connection,
            chatbox = s.chatbox?.let { ChatboxLine(Messages.chatbox(it.status), Messages.reason(it.reason), it.message) },
            waiting = s.outbox.pending.toInt(),
            wedged = s.outbox.wedged.map { WedgedChange(it.opId, Messages.wedged(it)) },
            error = actionError ?: lastError,
        )
    }
}
