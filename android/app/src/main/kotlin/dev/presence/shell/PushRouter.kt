package dev.presence.shell

import dev.presence.PresenceException
import kotlinx.coroutines.flow.MutableStateFlow
import kotlinx.coroutines.flow.StateFlow
import kotlinx.coroutines.flow.asStateFlow

/** What became of one push. */
sealed class PushOutcome {
    /** The engine applied it (`status`, `session_ended`) or answered it (`renew`). */
    data class Applied(val type: String) : PushOutcome()

    /** Well-formed but changed nothing: for another session, or not newer than what is shown. */
    data class Stale(val why: String) : PushOutcome()

    /** Not a Presence push; the engine refused it and changed nothing. */
    data class Malformed(val why: String) : PushOutcome()
}

/**
 * The one place every push provider forwards to: FCM's `FirebaseMessagingService`, the
 * UnifiedPush receiver (and the server's `webhook` provider in tests). It hands the payload to
 * the engine in the form the engine takes, waits until the engine is done with it (a renew
 * push is answered with one heartbeat before [onFcmMessage] returns, so the OS may suspend the
 * app right after), and reports what happened in [lastOutcome] and to [report].
 */
class PushRouter(
    private val engine: Engine,
    private val report: (PushOutcome) -> Unit = {},
) {
    private val outcome = MutableStateFlow<PushOutcome?>(null)

    /** The outcome of the latest push, for a debug screen or a log. */
    val lastOutcome: StateFlow<PushOutcome?> = outcome.asStateFlow()

    /** FCM: `RemoteMessage.data`. The server sends the payload as the `presence` string. */
    suspend fun onFcmMessage(data: Map<String, String>): PushOutcome =
        route(data["presence"] ?: jsonObject(data))

    /** UnifiedPush: the message bytes after the connector decrypted them. */
    suspend fun onUnifiedPushMessage(bytes: ByteArray): PushOutcome = route(String(bytes, Charsets.UTF_8))

    /** A payload as JSON text, whichever provider carried it. */
    suspend fun route(payload: String): PushOutcome {
        val before = engine.snapshot
        val result = try {
            engine.handlePush(payload)
            classify(payload, before)
        } catch (e: PresenceException.InvalidInput) {
            PushOutcome.Malformed(e.detail)
        }
        outcome.value = result
        report(result)
        return result
    }

    private fun classify(payload: String, before: dev.presence.ClientSnapshot): PushOutcome {
        val type = field(payload, "type") ?: "unknown"
        val session = field(payload, "session_id")
        if (session != null && session != before.session.sessionId) {
            return PushOutcome.Stale("for a session this device no longer has")
        }
        if (type == "status") {
            val shown = before.status?.version
            val now = engine.snapshot.status?.version
            if (shown != null && now == shown) return PushOutcome.Stale("not newer than version $shown")
        }
        return PushOutcome.Applied(type)
    }
}

/** The string value of `"name": "..."` in a small JSON text (the push payloads are flat). */
private fun field(json: String, name: String): String? =
    Regex(""""${Regex.escape(name)}"\s*:\s*"([^"\\]*)"""").find(json)?.groupValues?.get(1)

/** A string map as a JSON object, for an FCM message without the `presence` key. */
internal fun jsonObject(map: Map<String, String>): String =
    map.entries.joinToString(",", "{", "}") { (k, v) -> "${jsonString(k)}:${jsonString(v)}" }

private fun jsonString(s: String): String = buildString {
    append('"')
    for (c in s) {
        when {
            c == '"' -> append("\\\"")
            c == '\\' -> append("\\\\")
            c < ' ' -> append("\\u%04x".format(c.code))
            else -> append(c)
        }
    }
    append('"')
}
