package dev.presence.tests

import dev.presence.PresenceException
import dev.presence.SessionState
import dev.presence.testing.*
import java.util.Base64
import javax.crypto.Mac
import javax.crypto.spec.SecretKeySpec
import kotlin.test.assertEquals
import kotlin.test.assertFailsWith
import kotlin.test.assertNull
import kotlinx.coroutines.runBlocking
import org.junit.AfterClass
import org.junit.BeforeClass
import org.junit.Test

/**
 * Signing in with the customer's token (`loginWithToken`) through the generated Kotlin
 * bindings and the [dev.presence.PresenceEngine] wrapper, against the real server: the token is
 * an HS256 JWT made here with the JDK's HMAC, as a customer's backend would make it.
 */
class TokenLoginTests {
    companion object {
        lateinit var server: TestServer

        @BeforeClass @JvmStatic
        fun startServer() {
            server = TestServer.start()
        }

        @AfterClass @JvmStatic
        fun stopServer() {
            server.close()
        }

        const val ISSUER = "https://id.customer.test"
        const val SECRET = "a-shared-secret-of-at-least-32-bytes!"
    }

    private fun b64(bytes: ByteArray) = Base64.getUrlEncoder().withoutPadding().encodeToString(bytes)

    /** An HS256 JWT for `sub` with `email`, signed with `secret`. */
    private fun jwt(sub: String, email: String, secret: String): String {
        val now = System.currentTimeMillis() / 1000
        val header = b64("""{"alg":"HS256","typ":"JWT"}""".toByteArray())
        val claims = b64(
            """{"iss":"$ISSUER","aud":"presence","sub":"$sub","email":"$email","exp":${now + 600},"iat":$now}"""
                .toByteArray(),
        )
        val mac = Mac.getInstance("HmacSHA256").apply { init(SecretKeySpec(secret.toByteArray(), "HmacSHA256")) }
        return "$header.$claims.${b64(mac.doFinal("$header.$claims".toByteArray()))}"
    }

    @Test
    fun aCustomersTokenSignsInAndAForgedOneIsUnauthorized(): Unit = runBlocking {
        val creds = server.createAccount()
        val (code, body) = server.send(
            "PUT", "/v1/admin/sign-in",
            """{"jwt":{"issuer":"$ISSUER","audience":"presence","hs256_secret":"$SECRET"},"password_login":true,"provision":false}""",
            server.ownerToken(creds),
        )
        assertEquals(200, code, body)
        openEngine(server.url).use { engine ->
            assertFailsWith<PresenceException.Unauthorized> {
                engine.loginWithToken(creds.account, jwt("owner-1", creds.email, "another-secret-just-as-long-as-it-is"))
            }
            assertNull(engine.snapshot.session.agent, "nothing stored")
            engine.loginWithToken(creds.account, jwt("owner-1", creds.email, SECRET))
            val s = engine.awaitSnapshot { it.session.state == SessionState.ACTIVE && it.status != null }
            assertEquals(creds.email, s.session.agent?.email)
        }
    }
}
