import Foundation
import Presence
import PresenceShell
import XCTest

/// PresenceShell (view model, push router, background planner, token registration) over the
/// real libpresence_ffi and the real presence-server.
final class ShellTests: XCTestCase {
    static var server: TestServer!

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

    func testTheToggleOnOneDeviceShowsOnAnother() async throws {
        let c = try await server.createAccount()
        let phone = try await signedIn(server, c, name: "phone")
        let tablet = try await signedIn(server, c, name: "tablet")
        let stored = await phone.toggle.choose(.busy)
        XCTAssertTrue(stored)
        XCTAssertEqual(phone.toggle.current.wanted, .busy)
        let seen = try await awaitState(tablet) { $0.confirmed == .busy }
        XCTAssertFalse(seen.pending)
        await phone.engine.shutdown()
        await tablet.engine.shutdown()
    }

    func testAChangeMadeWhileOfflineIsKeptAndDelivered() async throws {
        let own = try TestServer()
        let c = try await own.createAccount()
        let phone = try await signedIn(own, c)
        own.stop()
        let stored = await phone.toggle.choose(.busy)
        XCTAssertTrue(stored, "storing must not need the server")
        XCTAssertTrue(phone.toggle.current.pending)
        XCTAssertEqual(phone.toggle.current.waiting, 1)
        _ = try await awaitState(phone) { $0.connectionState == .offline }
        try own.start()
        let delivered = try await awaitState(phone, timeout: 20) { $0.confirmed == .busy && $0.waiting == 0 }
        XCTAssertFalse(delivered.pending)
        await phone.engine.shutdown()
    }

    func testAWedgedChangeCanBeRetriedAndDiscarded() async throws {
        let c = try await server.createAccount()
        let phone = try await signedIn(server, c)
        // This server has no APNs key: it refuses the provider for good (422, field provider).
        let token = Data([0xde, 0xad, 0xbe, 0xef])
        await phone.registration.onDeviceToken(token)
        XCTAssertEqual(phone.registration.current?.token, "deadbeef")
        let wedged = try await awaitState(phone) { !$0.wedged.isEmpty }.wedged[0]
        XCTAssertTrue(wedged.text.hasPrefix("Notifications for this device was refused"), wedged.text)
        XCTAssertTrue(wedged.text.contains("provider"), wedged.text)
        // Retry sends it again; the server still refuses it, so it is wedged again.
        let retried = await phone.toggle.retry(wedged.opId)
        XCTAssertTrue(retried)
        _ = try await awaitState(phone) { $0.waiting == 0 && $0.wedged.count == 1 }
        let discarded = await phone.toggle.discard(wedged.opId)
        XCTAssertTrue(discarded)
        _ = try await awaitState(phone) { $0.wedged.isEmpty && $0.waiting == 0 }
        await phone.engine.shutdown()
    }

    func testAStatusPushUpdatesTheView() async throws {
        let c = try await server.createAccount()
        let phone = try await signedIn(server, c)
        await phone.planner.onBackground()
        let s = phone.engine.snapshot
        let userInfo: [AnyHashable: Any] = [
            "aps": ["content-available": 1], "presence": statusPush(s.session.sessionId!, "busy", s.status!.version + 1),
        ]
        let outcome = await phone.push.onRemoteNotification(userInfo)
        XCTAssertEqual(outcome, .applied(type: "status"))
        XCTAssertTrue(outcome.newData)
        _ = try await awaitState(phone) { $0.confirmed == .busy }
        await phone.engine.shutdown()
    }

    func testARenewPushIsAnsweredWithOneHeartbeat() async throws {
        let c = try await server.createAccount()
        let phone = try await signedIn(server, c)
        // Nothing listens there; the renew push this registration earns comes 25 min later.
        let registered = await phone.registration.onNewToken(provider: .webhook, token: "http://127.0.0.1:9/push")
        XCTAssertTrue(registered)
        _ = try await awaitState(phone) { $0.waiting == 0 && $0.wedged.isEmpty }
        await phone.planner.onBackground()
        let lease = try await awaitBackgroundLease(phone)
        let before = try await server.heartbeats()
        let renew: [AnyHashable: Any] = [
            "aps": ["content-available": 1],
            "presence": ["v": 1, "type": "renew", "session_id": phone.engine.snapshot.session.sessionId!, "lease_until": Int(lease)]
                as [String: Any],
        ]
        let outcome = await phone.push.onRemoteNotification(renew)
        XCTAssertEqual(outcome, .applied(type: "renew"))
        let after = try await server.heartbeats()
        XCTAssertEqual(after, before + 1, "one heartbeat before the router returned")
        await phone.engine.shutdown()
    }

    func testAStaleOrMalformedPushChangesNothingAndIsReported() async throws {
        let c = try await server.createAccount()
        let phone = try await signedIn(server, c)
        let reports = Reports()
        let router = PushRouter(engine: phone.engine) { reports.add($0) }
        await phone.planner.onBackground()
        let s = phone.engine.snapshot
        let id = s.session.sessionId!
        let version = s.status!.version
        let older = await router.onRemoteNotification(["presence": statusPush(id, "busy", version)])
        let elsewhere = await router.onRemoteNotification(["presence": statusPush("another-session", "busy", version + 5)])
        let garbage = await router.onRemoteNotification(["aps": ["content-available": 1], "presence": "not json"])
        let unknown = await router.onRemoteNotification(["presence": ["v": 9, "type": "renew"] as [String: Any]])
        guard case .stale = older, case .stale = elsewhere, case .malformed = garbage, case .malformed = unknown else {
            return XCTFail("\(older) \(elsewhere) \(garbage) \(unknown)")
        }
        XCTAssertFalse(garbage.newData)
        XCTAssertEqual(phone.engine.snapshot.status, s.status)
        XCTAssertEqual(phone.engine.snapshot.session, s.session)
        XCTAssertEqual(reports.all, [older, elsewhere, garbage, unknown])
        await phone.engine.shutdown()
    }

    func testInTheBackgroundWithPushTheBackgroundLeaseWithoutPushTheActiveOne() async throws {
        let c = try await server.createAccount()
        let without = try await signedIn(server, c, name: "no push")
        await without.planner.onBackground()
        try await without.engine.backgroundRefresh(deadline: 10)
        let short = without.engine.snapshot.leaseUntil! - without.engine.serverTimeNow()
        XCTAssertTrue((1...61_000).contains(short), "lease left \(short) ms without push")
        XCTAssertNil(without.planner.plan(), "nothing queued and no push: nothing to schedule")

        let with = try await signedIn(server, c, name: "push")
        _ = await with.registration.onNewToken(provider: .webhook, token: "http://127.0.0.1:9/push")
        _ = try await awaitState(with) { $0.waiting == 0 && $0.wedged.isEmpty }
        let plan = await with.planner.onBackground()
        let lease = try XCTUnwrap(with.engine.snapshot.leaseUntil)
        let left = lease - with.engine.serverTimeNow()
        XCTAssertTrue((25 * 60_000...35 * 60_000).contains(left), "lease left \(left) ms with push")
        // The fallback refresh: after the renew push (5 min before the end), before the end.
        let p = try XCTUnwrap(plan)
        XCTAssertEqual(p.deadline, 25)
        XCTAssertTrue(p.delay >= Double(left) / 1000 - 300 && p.delay <= Double(left) / 1000, "\(p), left \(left)")
        await without.engine.shutdown()
        await with.engine.shutdown()
    }

    func testNetworkLossPausesRetriesAndItsReturnResumesThem() async throws {
        let c = try await server.createAccount()
        let phone = try await signedIn(server, c)
        let tablet = try await signedIn(server, c, name: "tablet")
        await phone.planner.onPath(satisfied: false)
        _ = try await awaitState(phone) { $0.connectionState == .noNetwork }
        await phone.toggle.choose(.busy)
        // The server is up, but nothing goes out while the path is unsatisfied.
        let early = try? await awaitState(tablet, timeout: 1.5) { $0.confirmed == .busy }
        XCTAssertNil(early, "a change went out with the network down")
        XCTAssertEqual(phone.toggle.current.waiting, 1)
        XCTAssertEqual(phone.toggle.current.connection, "No network")
        await phone.planner.onPath(satisfied: true)
        _ = try await awaitState(phone) { $0.confirmed == .busy && $0.waiting == 0 }
        _ = try await awaitState(tablet) { $0.confirmed == .busy }
        await phone.engine.shutdown()
        await tablet.engine.shutdown()
    }

    func testARefreshWithADeadlineFinishesInsideIt() async throws {
        let own = try TestServer()
        let c = try await own.createAccount()
        let phone = try await signedIn(own, c)
        await phone.planner.onBackground()
        let (ok, next) = await phone.planner.refreshThenPlan(deadline: 5)
        XCTAssertTrue(ok.finished, ok.detail ?? "")
        XCTAssertLessThan(ok.elapsed, 5)
        XCTAssertNil(next, "no push and nothing queued: no next refresh")
        own.stop()
        await phone.toggle.choose(.busy)
        let late = await phone.planner.refresh(deadline: 2)
        XCTAssertFalse(late.finished)
        XCTAssertNotNil(late.detail)
        XCTAssertLessThan(late.elapsed, 2.75, "a 2 s deadline")
        XCTAssertEqual(phone.toggle.current.waiting, 1, "the change is still kept")
        await phone.engine.shutdown()
    }

    func testSigningOutFromTheShellEndsTheSessionAtOnce() async throws {
        let c = try await server.createAccount()
        let phone = try await signedIn(server, c)
        await phone.toggle.choose(.online)
        _ = try await awaitState(phone) { $0.confirmed == .online && !$0.pending }
        let before = try await server.widgetStatus(c)
        XCTAssertEqual(before, "online")
        let out = await phone.toggle.signOut()
        XCTAssertTrue(out)
        XCTAssertFalse(phone.toggle.current.signedIn)
        let after = try await server.widgetStatus(c)
        XCTAssertEqual(after, "offline", "no lease to wait out")
        await phone.engine.shutdown()
    }

    func testAWrongPasswordReadsAsAPersonWouldSayIt() async throws {
        let c = try await server.createAccount()
        let phone = try await openShell(server)
        let ok = await phone.toggle.signIn(account: c.account, email: c.email, password: "not the password")
        XCTAssertFalse(ok)
        XCTAssertEqual(phone.toggle.current.error, "Wrong account, email or password.")
        await phone.engine.shutdown()
    }
}

final class Reports: @unchecked Sendable {
    private let lock = NSLock()
    private var items: [PushOutcome] = []
    func add(_ o: PushOutcome) {
        lock.lock()
        items.append(o)
        lock.unlock()
    }
    var all: [PushOutcome] {
        lock.lock()
        defer { lock.unlock() }
        return items
    }
}
