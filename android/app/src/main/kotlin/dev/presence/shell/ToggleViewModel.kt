package dev.presence.shell

import dev.presence.AgentStatus
import dev.presence.ClientSnapshot
import dev.presence.Connection
import dev.presence.SessionState
import java.time.LocalTime
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
 * [confirmed] is what the server has; [pending] while they may differ. [headline] says the
 * shown status with its end and what follows ("Busy until 14:30, then online"), [custom] the
 * custom status ("🍔 Lunch"), [note] its note, [cause] why it changed when the agent did not
 * change it by hand ("Ended by timer"). [options] is the status menu; [noteDraft] the note
 * being written, sent with the next choice, with [noteLeft] ("88 characters left") and
 * [noteTooLong] when it cannot be sent.
 */
data class ToggleState(
    val signedIn: Boolean,
    val signedOutBecause: String?,
    val wanted: AgentStatus?,
    val confirmed: AgentStatus?,
    val pending: Boolean,
    val headline: String,
    val custom: String?,
    val note: String?,
    val cause: String?,
    val options: List<Option>,
    val noteDraft: String,
    val noteLeft: String,
    val noteTooLong: Boolean,
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
 * [ToggleState.error] a person reads. What each choice sends is [StatusChoices]'; times are
 * said in [time]'s zone and locale, on the device's clock (the engine's estimate of the
 * server's clock converts the server's `until`).
 */
class ToggleViewModel(private val engine: Engine, scope: CoroutineScope, private val time: DeviceTime = DeviceTime.System) {
    private val actionError = MutableStateFlow<String?>(null)
    private val noteDraft = MutableStateFlow("")

    val state: StateFlow<ToggleState> = combine(engine.snapshots, actionError, noteDraft) { s, e, n -> render(s, e, n) }
        .stateIn(scope, SharingStarted.Eagerly, render(engine.snapshot, null, ""))

    /** The state for the engine's snapshot right now (what [state] shows a moment later). */
    fun current(): ToggleState = render(engine.snapshot, actionError.value, noteDraft.value)

    suspend fun signIn(account: String, email: String, password: String): Boolean =
        act { engine.login(account.trim(), email.trim(), password) }

    /** Signs out: the session ends on the server at once, even if the request is still queued. */
    suspend fun signOut(): Boolean = act { engine.logout() }

    /** [status] with no end (and the note being written). */
    suspend fun choose(status: AgentStatus): Boolean = choose(Choice.Plain(status))

    /**
     * Sends [choice] with the note being written; returns once it is stored on the device
     * (the engine delivers it). The note is cleared once sent; a note that is too long
     * refuses the choice and nothing is stored.
     */
    suspend fun choose(choice: Choice): Boolean = act {
        engine.setStatusWith(StatusChoices.request(choice, engine.snapshot.status, noteDraft.value, time))
        noteDraft.value = ""
    }

    /** [status] until the next [at] on the device's wall clock (the time picker's answer). */
    suspend fun chooseUntil(status: AgentStatus, at: LocalTime): Boolean = choose(Choice.Until(status, at))

    /** The note being written, as typed (checked when sent). */
    fun editNote(text: String) {
        noteDraft.value = text
    }

    /** Keeps the shown status (its end, what follows, its custom status) with the note being written. */
    suspend fun saveNote(): Boolean = act {
        val req = StatusChoices.keepWithNote(engine.snapshot.status, noteDraft.value, engine.serverTimeNow())
            ?: return@act
        engine.setStatusWith(req)
        noteDraft.value = ""
    }

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

    private fun render(s: ClientSnapshot, actionError: String?, draft: String): ToggleState {
        val signedIn = s.session.state == SessionState.ACTIVE
        val lastError = s.lastError?.let(Messages::lastError)
        val st = s.status
        // The server's `until` on the device's clock: the same instant the device shows as that time.
        val untilHere = st?.until?.let { it + clockOffset() }
        val noteLength = StatusChoices.noteLength(draft)
        return ToggleState(
            signedIn = signedIn,
            signedOutBecause = if (s.session.state == SessionState.EXPIRED) lastError ?: "You were signed out." else null,
            wanted = st?.current,
            confirmed = st?.confirmed,
            pending = st?.pending == true,
            headline = st?.let { Messages.headline(it.current, untilHere, it.then, time) } ?: "—",
            custom = st?.customStatus?.let { id -> s.customStatuses.find { it.id == id }?.let(Messages::custom) ?: id },
            note = st?.note,
            cause = st?.cause?.let(Messages::cause),
            options = StatusChoices.menu(s.customStatuses),
            noteDraft = draft,
            noteLeft = Messages.noteLeft(noteLength),
            noteTooLong = noteLength > StatusChoices.NOTE_MAX,
            connection = Messages.connection(s.connection),
            connectionState = s.connection,
            chatbox = s.chatbox?.let { ChatboxLine(Messages.chatbox(it.status), Messages.reason(it.reason), it.message) },
            waiting = s.outbox.pending.toInt(),
            wedged = s.outbox.wedged.map { WedgedChange(it.opId, Messages.wedged(it)) },
            error = actionError ?: lastError,
        )
    }

    /** The device's clock minus the engine's estimate of the server's (0 once the engine is closed). */
    private fun clockOffset(): Long = runCatching { time.nowMs() - engine.serverTimeNow() }.getOrDefault(0L)
}
