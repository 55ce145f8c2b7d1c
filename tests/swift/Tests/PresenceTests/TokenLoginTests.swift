import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Presence
import XCTest

/// Signing in with the customer's token (`loginWithToken`) through the generated Swift bindings
/// and the `PresenceEngine` wrapper, against the real server. The token is an HS256 JWT made
/// here, as a customer's backend would make it (Foundation on Linux has no HMAC, so the test
/// carries a small SHA-256, checked against RFC 4231's published HMAC vector first).
final class TokenLoginTests: XCTestCase {
    static var server: TestServer!
    static let issuer = "https://id.customer.test"
    static let secret = "a-shared-secret-of-at-least-32-bytes!"

    override class func setUp() {
        super.setUp()
        do {
            server = try TestServer()
        } catch {
            fatalError("cannot start presence-server: \(error)")
        }
    }

    override class func tearDown() {
        server = nil
        removeTempDirs()
        super.tearDown()
    }

    private func ownerToken(_ c: Credentials) async throws -> String {
        let (status, data) = try await Self.server.request(
            "POST", "/v1/login",
            body: [
                "account": c.account, "email": c.email, "password": c.password,
                "device": ["id": "admin-\(UUID())", "platform": "cli", "name": "admin", "app_version": "test"],
            ], token: nil)
        guard status == 200,
            let json = try JSONSerialization.jsonObject(with: data) as? [String: Any],
            let token = json["token"] as? String
        else { throw HarnessError(description: "login: \(status)") }
        return token
    }

    private func jwt(sub: String, email: String, secret: String) -> String {
        let now = Int(Date().timeIntervalSince1970)
        let header = base64url(Array(#"{"alg":"HS256","typ":"JWT"}"#.utf8))
        let claims = base64url(Array(
            #"{"iss":"\#(Self.issuer)","aud":"presence","sub":"\#(sub)","email":"\#(email)","exp":\#(now + 600),"iat":\#(now)}"#.utf8))
        let signature = hmacSHA256(key: Array(secret.utf8), message: Array("\(header).\(claims)".utf8))
        return "\(header).\(claims).\(base64url(signature))"
    }

    func testTheHmacUsedToMakeTokensMatchesRfc4231() {
        let mac = hmacSHA256(key: Array("Jefe".utf8), message: Array("what do ya want for nothing?".utf8))
        XCTAssertEqual(
            mac.map { String(format: "%02x", $0) }.joined(),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
    }

    func testACustomersTokenSignsInAndAForgedOneIsUnauthorized() async throws {
        let creds = try await Self.server.createAccount()
        let owner = try await ownerToken(creds)
        let (status, _) = try await Self.server.request(
            "PUT", "/v1/admin/sign-in",
            body: [
                "jwt": ["issuer": Self.issuer, "audience": "presence", "hs256_secret": Self.secret],
                "password_login": true, "provision": false,
            ], token: owner)
        XCTAssertEqual(status, 200)
        let engine = try await PresenceEngine.open(config(Self.server.url))
        do {
            try await engine.loginWithToken(
                account: creds.account,
                token: jwt(sub: "owner-1", email: creds.email, secret: "another-secret-just-as-long-as-it-is"))
            XCTFail("signed in with a forged token")
        } catch PresenceError.Unauthorized(let detail) {
            XCTAssertFalse(detail.isEmpty)
        }
        XCTAssertNil(engine.snapshot.session.agent, "nothing stored")
        try await engine.loginWithToken(
            account: creds.account, token: jwt(sub: "owner-1", email: creds.email, secret: Self.secret))
        let active = await engine.awaitSnapshot { $0.session.state == .active && $0.status != nil }
        XCTAssertEqual(active?.session.agent?.email, creds.email)
        await engine.shutdown()
    }
}

private func base64url(_ bytes: [UInt8]) -> String {
    Data(bytes).base64EncodedString()
        .replacingOccurrences(of: "+", with: "-")
        .replacingOccurrences(of: "/", with: "_")
        .replacingOccurrences(of: "=", with: "")
}

private func hmacSHA256(key: [UInt8], message: [UInt8]) -> [UInt8] {
    var k = key.count > 64 ? sha256(key) : key
    k += [UInt8](repeating: 0, count: 64 - k.count)
    let inner = sha256(k.map { $0 ^ 0x36 } + message)
    return sha256(k.map { $0 ^ 0x5c } + inner)
}

private func sha256(_ message: [UInt8]) -> [UInt8] {
    let k: [UInt32] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
        0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
        0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
        0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
        0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
        0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
        0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
    ]
    var h: [UInt32] = [
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
    ]
    var data = message + [0x80]
    while data.count % 64 != 56 { data.append(0) }
    let bits = UInt64(message.count) * 8
    for i in (0..<8).reversed() { data.append(UInt8(truncatingIfNeeded: bits >> (UInt64(i) * 8))) }
    func rotr(_ x: UInt32, _ n: UInt32) -> UInt32 { (x >> n) | (x << (32 - n)) }
    for chunk in stride(from: 0, to: data.count, by: 64) {
        var w = [UInt32](repeating: 0, count: 64)
        for i in 0..<16 {
            let b = chunk + i * 4
            w[i] = UInt32(data[b]) << 24 | UInt32(data[b + 1]) << 16 | UInt32(data[b + 2]) << 8 | UInt32(data[b + 3])
        }
        for i in 16..<64 {
            let s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3)
            let s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10)
            w[i] = w[i - 16] &+ s0 &+ w[i - 7] &+ s1
        }
        var (a, b, c, d, e, f, g, hh) = (h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7])
        for i in 0..<64 {
            let s1 = rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)
            let ch = (e & f) ^ (~e & g)
            let t1 = hh &+ s1 &+ ch &+ k[i] &+ w[i]
            let s0 = rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)
            let maj = (a & b) ^ (a & c) ^ (b & c)
            let t2 = s0 &+ maj
            (hh, g, f, e, d, c, b, a) = (g, f, e, d &+ t1, c, b, a, t1 &+ t2)
        }
        h = [h[0] &+ a, h[1] &+ b, h[2] &+ c, h[3] &+ d, h[4] &+ e, h[5] &+ f, h[6] &+ g, h[7] &+ hh]
    }
    return h.flatMap { v in (0..<4).map { UInt8(truncatingIfNeeded: v >> (24 - UInt32($0) * 8)) } }
}
