import Foundation
import Presence
import XCTest

/// The generated Swift bindings, the `PresenceEngine` wrapper and libpresence_ffi against the
/// real presence-server binary.
final class PresenceTests: XCTestCase {
    static var server: TestServer!

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

    private func loggedIn(_ creds: Credentials, name: String = "swift test device") async throws
        -> PresenceEngine
    {
        let engine = try await PresenceEngine.open(config(Self.server.url, name: name))
        try await engine.login(account: creds.account, email: creds.email, password: creds.password)
        return engine
    }

    func testLoginGivesAnActiveSessionThroughTheStream() async throws {
        let creds = try await Self.server.createAccount()
        let engine = try await PresenceEngine.open(config(Self.server.url))
        var stream = engine.snapshots().makeAsyncIterator()
        let first = await stream.next()
        XCTAssertEqual(first?.session.state, .loggedOut)
        try await engine.login(account: creds.account, email: creds.email, password: creds.password)
        var active: ClientSnapshot?
        while let s = await stream.next() {
            if s.session.state == .active && s.status != nil {
                active = s
                break
            }
        }
        XCTAssertEqual(active?.session.account, creds.account)
        XCTAssertEqual(active?.session.agent?.email, creds.email)
        XCTAssertGreaterThan(active?.leaseUntil ?? 0, engine.serverTimeNow())
        await engine.shutdown()
    }

    func testAStatusChangeOnOneDeviceReachesTheOther() async throws {
        let creds = try await Self.server.createAccount()
        let phone = try await loggedIn(creds, name: "phone")
        let tablet = try await loggedIn(creds, name: "tablet")
        XCTAssertNotEqual(phone.deviceId, tablet.deviceId)
        try await phone.setStatus(.busy)
        XCTAssertEqual(phone.snapshot.status?.current, .busy)
        let theirs = await tablet.awaitSnapshot { $0.status?.confirmed == .busy }
        XCTAssertNotNil(theirs, "the tablet never saw busy: \(tablet.snapshot)")
        let mine = await phone.awaitSnapshot { $0.status?.pending == false && $0.status?.confirmed == .busy }
        XCTAssertEqual(mine?.status?.version, theirs?.status?.version)
        await phone.shutdown()
        await tablet.shutdown()
    }

    func testAChangeMadeWhileTheServerIsDownIsDeliveredAfterItRestarts() async throws {
        let own = try TestServer()
        let creds = try await own.createAccount()
        let engine = try await PresenceEngine.open(config(own.url))
        try await engine.login(account: creds.account, email: creds.email, password: creds.password)
        _ = await engine.awaitSnapshot { $0.status != nil }
        own.stop()
        try await engine.setStatus(.busy)
        XCTAssertEqual(engine.snapshot.status?.current, .busy)
        XCTAssertEqual(engine.snapshot.status?.pending, true)
        XCTAssertEqual(engine.snapshot.outbox.pending, 1)
        try own.start()
        let delivered = await engine.awaitSnapshot(timeout: 20) {
            $0.outbox.pending == 0 && $0.status?.confirmed == .busy
        }
        XCTAssertNotNil(delivered, "not delivered after the restart: \(engine.snapshot)")
        await engine.shutdown()
    }

    func testPushPayloads() async throws {
        let creds = try await Self.server.createAccount()
        let engine = try await loggedIn(creds)
        await engine.setLifecycle(.background)
        guard let before = await engine.awaitSnapshot({ $0.status != nil && $0.session.sessionId != nil }),
            let sessionId = before.session.sessionId, let version = before.status?.version
        else {
            return XCTFail("no session: \(engine.snapshot)")
        }
        let push = """
            {"v":1,"type":"status","session_id":"\(sessionId)","status":{"status":"busy",\
            "version":\(version + 1),"intent_at":\(Int64(Date().timeIntervalSince1970 * 1000)),\
            "changed_by_device":"elsewhere"}}
            """
        try await engine.handlePush(push)
        let applied = await engine.awaitSnapshot { $0.status?.confirmed == .busy }
        XCTAssertEqual(applied?.status?.version, version + 1)

        // As APNs hands it over: the userInfo dictionary, with the payload under `presence`.
        let object = try JSONSerialization.jsonObject(with: Data(push.utf8)) as! [String: Any]
        var payload = object
        var status = object["status"] as! [String: Any]
        status["status"] = "offline"
        status["version"] = version + 2
        payload["status"] = status
        let userInfo: [AnyHashable: Any] = ["aps": ["content-available": 1], "presence": payload]
        try await engine.handlePush(userInfo: userInfo)
        let offline = await engine.awaitSnapshot { $0.status?.confirmed == .offline }
        XCTAssertEqual(offline?.status?.version, version + 2)
        status["status"] = "busy"
        status["version"] = version + 3
        payload["status"] = status
        try await engine.handlePush(userInfo: ["aps": ["content-available": 1], "presence": payload])
        _ = await engine.awaitSnapshot { $0.status?.confirmed == .busy }

        do {
            try await engine.registerPush(provider: .unifiedpush, token: "https://push.example.org/up/1")
            XCTFail("a UnifiedPush registration without keys was accepted")
        } catch PresenceError.InvalidInput(let detail) {
            XCTAssertTrue(detail.contains("keys"), detail)
        }

        for bad in ["not json", "{}", #"{"v":1,"type":"dance","session_id":"x"}"#] {
            do {
                try await engine.handlePush(bad)
                XCTFail("accepted \(bad)")
            } catch PresenceError.InvalidInput(let detail) {
                XCTAssertFalse(detail.isEmpty)
            }
        }
        XCTAssertEqual(engine.snapshot.status?.confirmed, .busy)
        await engine.shutdown()
    }

    func testErrorsMapToPresenceError() async throws {
        let creds = try await Self.server.createAccount()
        let engine = try await PresenceEngine.open(config(Self.server.url))
        do {
            try await engine.login(account: creds.account, email: creds.email, password: "wrong")
            XCTFail("logged in with a wrong password")
        } catch PresenceError.Unauthorized(let detail) {
            XCTAssertFalse(detail.isEmpty)
        }
        await engine.shutdown()

        let dead = try await PresenceEngine.open(config(deadServerUrl()))
        do {
            try await dead.login(account: "acme", email: "a@acme.example", password: "pw-secret-1")
            XCTFail("logged in to a dead server")
        } catch PresenceError.Network(let detail) {
            XCTAssertFalse(detail.isEmpty)
        }
        await dead.shutdown()
        do {
            try await dead.setStatus(.online)
            XCTFail("a shut-down client accepted a call")
        } catch PresenceError.Internal {
        }
    }

    func testLogsReachTheLogSink() async throws {
        let sink = CollectingSink()
        initLogging(level: .debug, sink: sink)
        defer { initLogging(level: .warn, sink: nil) }
        let engine = try await PresenceEngine.open(config(deadServerUrl()))
        _ = try? await engine.login(account: "acme", email: "a@acme.example", password: "pw-secret-1")
        await engine.shutdown()
        XCTAssertTrue(sink.all.contains { $0.target.hasPrefix("presence") }, "\(sink.all)")
        XCTAssertFalse(sink.all.contains { $0.level == .trace })
    }
}
