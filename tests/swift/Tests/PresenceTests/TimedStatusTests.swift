import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Presence
import XCTest

/// Timed statuses, custom statuses, notes, activity reports and the status log through the
/// generated Swift bindings and the `PresenceEngine` wrapper, against the real server.
final class TimedStatusTests: XCTestCase {
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

    private func loggedIn(_ creds: Credentials) async throws -> PresenceEngine {
        let engine = try await PresenceEngine.open(config(Self.server.url))
        try await engine.login(account: creds.account, email: creds.email, password: creds.password)
        _ = await engine.awaitSnapshot { $0.session.state == .active && $0.status != nil }
        return engine
    }

    /// The owner's bearer token, from a login over HTTP.
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

    /// `PUT /v1/admin/custom-statuses` (a JSON array, which `TestServer.request` does not send).
    private func putCustomStatuses(_ token: String, _ json: String) async throws -> Int {
        var r = URLRequest(url: URL(string: "\(Self.server.url)/v1/admin/custom-statuses")!)
        r.httpMethod = "PUT"
        r.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization")
        r.setValue("application/json", forHTTPHeaderField: "Content-Type")
        r.httpBody = Data(json.utf8)
        return try await withCheckedThrowingContinuation { cont in
            URLSession.shared.dataTask(with: r) { _, response, error in
                if let error = error {
                    cont.resume(throwing: error)
                } else {
                    cont.resume(returning: (response as? HTTPURLResponse)?.statusCode ?? 0)
                }
            }.resume()
        }
    }

    func testSetStatusWithADurationShowsItsEndAndEveryFieldOnceConfirmed() async throws {
        let creds = try await Self.server.createAccount()
        let token = try await ownerToken(creds)
        let code = try await putCustomStatuses(
            token,
            #"[{"id":"lunch","label":"Lunch","emoji":null,"base":"busy","default_duration_ms":3600000}]"#)
        XCTAssertEqual(code, 200)
        let engine = try await loggedIn(creds)
        try await engine.refresh()
        let listed = await engine.awaitSnapshot { !$0.customStatuses.isEmpty }
        XCTAssertEqual(listed?.customStatuses.first?.id, "lunch")
        XCTAssertEqual(listed?.customStatuses.first?.base, .busy)
        XCTAssertEqual(listed?.customStatuses.first?.defaultDurationMs, 3_600_000)

        let before = engine.serverTimeNow()
        try await engine.setStatusWith(
            StatusRequest(status: .busy, durationMs: 600_000, then: .online, customStatus: "lunch", note: "back soon"))
        let until = try XCTUnwrap(engine.snapshot.status?.until)
        XCTAssertGreaterThanOrEqual(until - 600_000, before - 1)
        let s = await engine.awaitSnapshot { $0.status?.pending == false && $0.status?.confirmed == .busy }
        let st = try XCTUnwrap(s?.status)
        XCTAssertEqual(st.until, until)
        XCTAssertEqual(st.then, .online)
        XCTAssertEqual(st.customStatus, "lunch")
        XCTAssertEqual(st.note, "back soon")
        XCTAssertEqual(st.cause, .manual)
        XCTAssertNil(st.changedByAgent)
        let back = await engine.awaitSnapshot { $0.chatbox?.backAt != nil }
        XCTAssertEqual(back?.chatbox?.backAt, until)
        await engine.shutdown()
    }

    func testATimedStatusEndsWithCauseTimer() async throws {
        let creds = try await Self.server.createAccount()
        let engine = try await loggedIn(creds)
        try await engine.setStatusWith(StatusRequest(status: .busy, durationMs: 1_000, then: .online))
        let s = await engine.awaitSnapshot { $0.status?.cause == .timer }
        XCTAssertEqual(s?.status?.current, .online)
        XCTAssertNil(s?.status?.until)
        await engine.shutdown()
    }

    func testADurationOutOfBoundsThrowsInvalidInputNamingTheField() async throws {
        let creds = try await Self.server.createAccount()
        let engine = try await loggedIn(creds)
        do {
            try await engine.setStatusWith(StatusRequest(status: .busy, durationMs: 10))
            XCTFail("a 10 ms status was accepted")
        } catch PresenceError.InvalidInput(let detail) {
            XCTAssertTrue(detail.hasPrefix("duration_ms"), detail)
        }
        XCTAssertEqual(engine.snapshot.outbox.pending, 0)
        do {
            _ = try await engine.statusLog(limit: 0)
            XCTFail("a log page of 0 entries was accepted")
        } catch PresenceError.InvalidInput(let detail) {
            XCTAssertTrue(detail.hasPrefix("limit"), detail)
        }
        await engine.shutdown()
    }

    func testReportIdleReachesTheServerWithTheNextHeartbeat() async throws {
        let creds = try await Self.server.createAccount()
        let engine = try await loggedIn(creds)
        engine.reportIdle(120)
        try await engine.backgroundRefresh(deadline: 10)
        let (status, data) = try await Self.server.request("GET", "/v1/me", token: try await ownerToken(creds))
        XCTAssertEqual(status, 200)
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let sessions = try XCTUnwrap(json["sessions"] as? [[String: Any]])
        let idle = sessions.compactMap { ($0["idle_ms"] as? NSNumber)?.int64Value }
        XCTAssertEqual(idle.count, 1, "\(sessions)")
        XCTAssertTrue((120_000..<130_000).contains(idle.first ?? 0), "\(idle)")
        engine.reportIdle(nil)
        await engine.shutdown()
    }

    func testTheStatusLogListsChangesNewestFirst() async throws {
        let creds = try await Self.server.createAccount()
        let engine = try await loggedIn(creds)
        for (i, status) in [AgentStatus.online, .busy].enumerated() {
            try await engine.setStatusWith(StatusRequest(status: status, note: "change \(i)"))
            _ = await engine.awaitSnapshot { $0.outbox.pending == 0 && $0.status?.pending == false }
        }
        let page = try await engine.statusLog(limit: 1)
        XCTAssertEqual(page.entries.count, 1)
        XCTAssertEqual(page.entries.first?.note, "change 1")
        XCTAssertEqual(page.entries.first?.cause, .manual)
        let next = try XCTUnwrap(page.next)
        let older = try await engine.statusLog(limit: 1, after: next)
        XCTAssertEqual(older.entries.first?.note, "change 0")
        await engine.shutdown()
    }
}
