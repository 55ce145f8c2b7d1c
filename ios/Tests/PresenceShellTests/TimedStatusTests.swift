import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Presence
import PresenceShell
import XCTest

/// The toggle screen's timed statuses, custom statuses and notes over the real library and the
/// real server: what a choice on one phone makes the server hold, and what another phone then
/// shows.
final class TimedStatusTests: XCTestCase {
    static var server: TestServer!
    /// A phone in Berlin, in British English, on the real clock.
    let berlin = ZonedDeviceTime(timeZone: TimeZone(identifier: "Europe/Berlin")!, locale: Locale(identifier: "en_GB"))

    override class func setUp() {
        super.setUp()
        do { server = try TestServer() } catch { fatalError("cannot start presence-server: \(error)") }
    }

    override class func tearDown() {
        server = nil
        removeTempDirs()
        super.tearDown()
    }

    var server: TestServer { Self.server }

    func openPhone(_ c: Credentials, _ name: String = "phone") async throws -> Shell {
        try await signedIn(server, c, name: name, time: berlin)
    }

    func testBusyForFifteenMinutesEndsFifteenMinutesAfterItsIntentAndShowsItsEndOnAnotherPhone() async throws {
        let c = try await server.createAccount()
        let admin = try await ownerToken(server, c)
        let phone = try await openPhone(c)
        let tablet = try await openPhone(c, "tablet")
        await phone.toggle.choose(.online)
        _ = try await awaitState(tablet) { $0.confirmed == .online }
        let stored = await phone.toggle.choose(.timed(.busy, .minutes15))
        XCTAssertTrue(stored)
        let seen = try await awaitState(tablet) { $0.confirmed == .busy && $0.headline.hasPrefix("Busy until") }
        let held = try await serverStatus(server, admin)
        XCTAssertEqual(held["status"] as? String, "busy")
        XCTAssertEqual(held["then"] as? String, "online")
        let until = try XCTUnwrap(held["until"] as? Int64)
        XCTAssertEqual(until - (held["intent_at"] as? Int64 ?? 0), 15 * 60_000)
        let expected = "Busy until \(Messages.clock(until, time: berlin)), then online"
        XCTAssertEqual(seen.headline, expected)
        let settled = try await awaitState(phone) { !$0.pending }
        XCTAssertEqual(settled.headline, expected)
        XCTAssertNil(seen.cause, "the agent's own change says no cause")
        await phone.engine.shutdown()
        await tablet.engine.shutdown()
    }

    func testUntilAChosenTimeEndsAtThatTimeOnThePhonesClock() async throws {
        let c = try await server.createAccount()
        let admin = try await ownerToken(server, c)
        let phone = try await openPhone(c)
        await phone.toggle.choose(.busy)
        _ = try await awaitState(phone) { $0.confirmed == .busy && !$0.pending }
        // Two hours from now, to the minute, on the Berlin wall clock.
        let nowHere = TimeOfDay(Date(), in: berlin.timeZone)
        let chosen = TimeOfDay(hour: (nowHere.hour + 2) % 24, minute: nowHere.minute)
        let stored = await phone.toggle.chooseUntil(.offline, chosen)
        XCTAssertTrue(stored)
        let shown = try await awaitState(phone) { $0.confirmed == .offline && !$0.pending }
        let target = StatusChoices.nextOccurrence(chosen, nowMs: berlin.nowMs(), zone: berlin.timeZone)
        let held = try await serverStatus(server, admin)
        let until = try XCTUnwrap(held["until"] as? Int64)
        // One clock on both sides here: only the trip from tap to stamp (and the engine's
        // estimate of the server's clock) lies between.
        XCTAssertTrue((-1_000...5_000).contains(until - target), "until \(until), chosen \(target)")
        XCTAssertEqual(held["then"] as? String, "busy", "the status before follows")
        XCTAssertEqual(shown.headline, "Offline until \(Messages.clock(target, time: berlin)), then busy")
        XCTAssertTrue(shown.headline.contains(String(format: "%02d:%02d", chosen.hour, chosen.minute)), shown.headline)
        await phone.engine.shutdown()
    }

    func testACustomStatusWithANoteShowsItsEmojiLabelAndNoteOnAnotherPhone() async throws {
        let c = try await server.createAccount()
        let admin = try await ownerToken(server, c)
        let (code, _) = try await requestJSON(
            server, "PUT", "/v1/admin/custom-statuses",
            #"[{"id":"lunch","label":"Lunch","emoji":"🍔","base":"busy","default_duration_ms":3600000},"#
                + #"{"id":"training","label":"In training","emoji":null,"base":"offline","default_duration_ms":null}]"#,
            token: admin)
        XCTAssertEqual(code, 200)
        let phone = try await openPhone(c)
        let tablet = try await openPhone(c, "tablet")
        await phone.toggle.choose(.online)
        _ = try await awaitState(tablet) { $0.confirmed == .online }
        let menu = try await awaitState(phone) { s in s.options.contains { $0.label.hasPrefix("🍔 Lunch") } }.options
        XCTAssertEqual(menu.suffix(2).map(\.label), ["🍔 Lunch · Busy for 1 h", "In training · Offline"])
        phone.toggle.editNote("  At the dentist  ")
        XCTAssertEqual(phone.toggle.current.noteLeft, "86 characters left")
        guard case .send(_, let lunch) = menu[menu.count - 2] else { return XCTFail("no lunch row: \(menu)") }
        let stored = await phone.toggle.choose(lunch)
        XCTAssertTrue(stored)
        XCTAssertEqual(phone.toggle.current.noteDraft, "", "the note went with the choice")
        let seen = try await awaitState(tablet) { $0.custom != nil }
        XCTAssertEqual(seen.custom, "🍔 Lunch")
        XCTAssertEqual(seen.note, "At the dentist")
        XCTAssertTrue(seen.headline.hasPrefix("Busy until ") && seen.headline.hasSuffix(", then online"), seen.headline)
        let held = try await serverStatus(server, admin)
        XCTAssertEqual(held["custom_status"] as? String, "lunch")
        XCTAssertEqual((held["until"] as? Int64 ?? 0) - (held["intent_at"] as? Int64 ?? 0), 3_600_000, "the custom status's default length")
        await phone.engine.shutdown()
        await tablet.engine.shutdown()
    }

    func testANoteTooLongIsRefusedOnThePhoneAndNothingIsQueued() async throws {
        let c = try await server.createAccount()
        let phone = try await openPhone(c)
        let before = phone.toggle.current
        let long = String(repeating: "x", count: 101)
        phone.toggle.editNote(long)
        XCTAssertTrue(phone.toggle.current.noteTooLong)
        XCTAssertEqual(phone.toggle.current.noteLeft, "The note has 101 characters; at most 100 fit.")
        let refused = await phone.toggle.choose(.timed(.busy, .minutes15))
        XCTAssertFalse(refused)
        let now = phone.toggle.current
        XCTAssertEqual(now.error, "The note has 101 characters; at most 100 fit.")
        XCTAssertEqual(now.waiting, 0)
        XCTAssertEqual(now.wanted, before.wanted)
        XCTAssertEqual(now.noteDraft, long, "the note is kept for editing")
        let fits = String(repeating: "x", count: 100)
        phone.toggle.editNote(fits)
        XCTAssertFalse(phone.toggle.current.noteTooLong)
        let stored = await phone.toggle.choose(.timed(.busy, .minutes15))
        XCTAssertTrue(stored)
        let sent = try await awaitState(phone) { $0.confirmed == .busy && !$0.pending }
        XCTAssertEqual(sent.note, fits)
        await phone.engine.shutdown()
    }

    func testTheEndOfATimedStatusSaysEndedByTimer() async throws {
        let c = try await server.createAccount()
        let phone = try await openPhone(c)
        // The menu's shortest is 15 minutes; the engine takes any length the server does.
        try await phone.engine.setStatusWith(StatusRequest(status: .busy, durationMs: 1_500, then: .online, customStatus: nil, note: "brb"))
        let timed = try await awaitState(phone) { $0.confirmed == .busy && !$0.pending }
        XCTAssertTrue(timed.headline.hasPrefix("Busy until "), timed.headline)
        let ended = try await awaitState(phone) { $0.confirmed == .online }
        XCTAssertEqual(ended.cause, "Ended by timer")
        XCTAssertEqual(ended.headline, "Online")
        XCTAssertNil(ended.note)
        await phone.engine.shutdown()
    }

    func testAnAdminsChangeSaysSetByAnAdmin() async throws {
        let c = try await server.createAccount()
        let admin = try await ownerToken(server, c)
        let phone = try await openPhone(c)
        await phone.toggle.choose(.online)
        _ = try await awaitState(phone) { $0.confirmed == .online && !$0.pending }
        let id = try XCTUnwrap(phone.engine.snapshot.session.agent?.id)
        let (code, _) = try await requestJSON(
            server, "PUT", "/v1/admin/agents/\(id)/status", #"{"status":"offline","note":"Covering the phones"}"#, token: admin)
        XCTAssertEqual(code, 200)
        let seen = try await awaitState(phone) { $0.confirmed == .offline }
        XCTAssertEqual(seen.cause, "Set by an admin")
        XCTAssertEqual(seen.note, "Covering the phones")
        XCTAssertEqual(seen.headline, "Offline")
        await phone.toggle.choose(.busy)
        let own = try await awaitState(phone) { $0.confirmed == .busy && !$0.pending }
        XCTAssertNil(own.cause)
        await phone.engine.shutdown()
    }

    func testSavingANoteKeepsTheTimedStatusItsEndAndWhatFollows() async throws {
        let c = try await server.createAccount()
        let admin = try await ownerToken(server, c)
        let phone = try await openPhone(c)
        await phone.toggle.choose(.offline)
        _ = try await awaitState(phone) { $0.confirmed == .offline && !$0.pending }
        await phone.toggle.choose(.timed(.busy, .minutes30))
        let timed = try await awaitState(phone) { $0.confirmed == .busy && !$0.pending }
        let first = try await serverStatus(server, admin)
        phone.toggle.editNote("On a call with Acme")
        let saved = await phone.toggle.saveNote()
        XCTAssertTrue(saved)
        let noted = try await awaitState(phone) { $0.note == "On a call with Acme" && !$0.pending }
        let second = try await serverStatus(server, admin)
        XCTAssertGreaterThan(second["version"] as? Int64 ?? 0, first["version"] as? Int64 ?? 0)
        XCTAssertEqual(second["status"] as? String, "busy")
        XCTAssertEqual(second["then"] as? String, "offline")
        let moved = (second["until"] as? Int64 ?? 0) - (first["until"] as? Int64 ?? 0)
        XCTAssertTrue((0...5_000).contains(moved), "the end moved by \(moved) ms")
        XCTAssertEqual(noted.headline, timed.headline)
        await phone.engine.shutdown()
    }

    func testAnIdleChangeSaysAwayIdleAndActivitySaysBackFromIdle() async throws {
        let c = try await server.createAccount()
        // The owner's own session stands in for a desktop app that reports idle time.
        let desktop = try await ownerToken(server, c)
        let (settings, _) = try await requestJSON(
            server, "PUT", "/v1/admin/settings", #"{"idle_after_ms":1000,"idle_status":"busy","return_on_activity":true}"#,
            token: desktop)
        XCTAssertEqual(settings, 200)
        let (set, _) = try await requestJSON(
            server, "PUT", "/v1/me/status", #"{"status":"online","op_id":"\#(UUID().uuidString.lowercased())"}"#, token: desktop)
        XCTAssertEqual(set, 200)
        // No input for 5 s, with 1 s allowed: the server makes the agent busy at once.
        let (idle, _) = try await requestJSON(server, "POST", "/v1/session/heartbeat", #"{"mode":"active","idle_ms":5000}"#, token: desktop)
        XCTAssertEqual(idle, 200)
        // The phone signs in afterwards (a live phone reports no idle time, so it would keep the agent active).
        let phone = try await openPhone(c)
        let away = try await awaitState(phone) { $0.confirmed == .busy }
        XCTAssertEqual(away.cause, "Away (idle)")
        XCTAssertEqual(away.headline, "Busy")
        let (back, _) = try await requestJSON(server, "POST", "/v1/session/heartbeat", #"{"mode":"active","idle_ms":0}"#, token: desktop)
        XCTAssertEqual(back, 200)
        let returned = try await awaitState(phone) { $0.confirmed == .online }
        XCTAssertEqual(returned.cause, "Back from idle")
        await phone.engine.shutdown()
    }

    func testATimedChoiceMadeOfflineShowsItsEndAtOnceAndKeepsItExactly() async throws {
        let own = try TestServer()
        let c = try await own.createAccount()
        let phone = try await signedIn(own, c, time: berlin)
        await phone.toggle.choose(.online)
        _ = try await awaitState(phone) { $0.confirmed == .online && !$0.pending }
        own.stop()
        let stored = await phone.toggle.choose(.timed(.busy, .minutes15))
        XCTAssertTrue(stored, "storing must not need the server")
        let queued = phone.toggle.current
        XCTAssertTrue(queued.pending)
        let until = try XCTUnwrap(phone.engine.snapshot.status?.until, "the pending change's end is known on the phone")
        XCTAssertEqual(queued.headline, "Busy until \(Messages.clock(until, time: berlin)), then online")
        _ = try await awaitState(phone) { $0.connectionState == .offline }
        try own.start()
        let delivered = try await awaitState(phone, timeout: 20) { $0.confirmed == .busy && $0.waiting == 0 && !$0.pending }
        XCTAssertEqual(delivered.headline, queued.headline)
        // The end counts from the tap, not from the delivery.
        let held = try await serverStatus(own, try await ownerToken(own, c))
        XCTAssertEqual(held["until"] as? Int64, until)
        await phone.engine.shutdown()
    }
}

/// Logs in over HTTP as the account's owner (for admin routes); the bearer token.
func ownerToken(_ server: TestServer, _ c: Credentials) async throws -> String {
    let (code, data) = try await server.request(
        "POST", "/v1/login",
        body: [
            "account": c.account, "email": c.email, "password": c.password,
            "device": ["id": "admin-\(UUID().uuidString)", "platform": "cli", "name": "admin", "app_version": "test"],
        ], token: nil)
    guard code == 200, let json = try JSONSerialization.jsonObject(with: data) as? [String: Any],
        let token = json["token"] as? String
    else { throw HarnessError(description: "login: \(code) \(String(decoding: data, as: UTF8.self))") }
    return token
}

/// A request with a JSON body given as text (an array, which `TestServer.request` does not take).
func requestJSON(_ server: TestServer, _ method: String, _ path: String, _ json: String, token: String) async throws -> (Int, Data) {
    var r = URLRequest(url: URL(string: "\(server.url)\(path)")!)
    r.httpMethod = method
    r.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization")
    r.setValue("application/json", forHTTPHeaderField: "Content-Type")
    r.httpBody = Data(json.utf8)
    return try await withCheckedThrowingContinuation { cont in
        URLSession.shared.dataTask(with: r) { data, response, error in
            if let error = error {
                cont.resume(throwing: error)
            } else {
                cont.resume(returning: ((response as? HTTPURLResponse)?.statusCode ?? 0, data ?? Data()))
            }
        }.resume()
    }
}

/// The agent's status as the server holds it (`GET /v1/me` with the owner's token), numbers as
/// Int64.
func serverStatus(_ server: TestServer, _ token: String) async throws -> [String: Any] {
    let (code, data) = try await server.request("GET", "/v1/me", token: token)
    guard code == 200, let json = try JSONSerialization.jsonObject(with: data) as? [String: Any],
        let status = json["status"] as? [String: Any]
    else { throw HarnessError(description: "GET /v1/me: \(code)") }
    return status.mapValues { v -> Any in (v as? Int).map { Int64($0) } ?? v }
}
