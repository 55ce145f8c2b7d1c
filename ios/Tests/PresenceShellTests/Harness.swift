import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Presence
import PresenceShell
import XCTest

// What only the shell tests need; the server harness is the shared
// test-support/swift/TestServer.swift (linked here).

func config(_ serverUrl: String, name: String) -> ClientConfig {
    ClientConfig(
        serverUrl: serverUrl, dataDir: tempDir(),
        device: DeviceInfo(platform: .ios, name: name, appVersion: "shell-test"),
        tuning: ClientTuning(
            requestTimeoutMs: 5000, backoffBaseMs: 100, backoffCapMs: 500, sseIdleTimeoutMs: nil, clockSkewMs: nil))
}

func openShell(_ server: TestServer, name: String = "phone", time: DeviceTime = SystemDeviceTime()) async throws -> Shell {
    try await Shell.open(config(server.url, name: name), time: time)
}

func signedIn(_ server: TestServer, _ c: Credentials, name: String = "phone", time: DeviceTime = SystemDeviceTime())
    async throws -> Shell
{
    let shell = try await openShell(server, name: name, time: time)
    let ok = await shell.toggle.signIn(account: c.account, email: c.email, password: c.password)
    guard ok else { throw HarnessError(description: "sign-in failed: \(shell.toggle.current.error ?? "?")") }
    _ = try await awaitState(shell) { $0.signedIn && $0.confirmed != nil }
    return shell
}

/// Waits, with a deadline, until the toggle state satisfies `predicate`.
func awaitState(_ shell: Shell, timeout: TimeInterval = 15, _ predicate: @escaping @Sendable (ToggleState) -> Bool)
    async throws -> ToggleState
{
    let stream = shell.toggle.states()
    let found: ToggleState? = await withTaskGroup(of: ToggleState?.self) { group in
        group.addTask {
            for await s in stream where predicate(s) { return s }
            return nil
        }
        group.addTask {
            try? await Task.sleep(nanoseconds: UInt64(timeout * 1_000_000_000))
            return nil
        }
        let first = await group.next() ?? nil
        group.cancelAll()
        return first
    }
    guard let s = found else {
        throw HarnessError(description: "state never matched within \(timeout) s; last: \(shell.toggle.current)")
    }
    return s
}

func statusPush(_ sessionId: String, _ status: String, _ version: Int64) -> [String: Any] {
    [
        "v": 1, "type": "status", "session_id": sessionId,
        "status": [
            "status": status, "version": Int(version), "intent_at": Int(Date().timeIntervalSince1970 * 1000),
            "changed_by_device": "elsewhere",
        ] as [String: Any],
    ]
}

/// Waits until the engine holds a lease longer than the active ttl (a background lease).
func awaitBackgroundLease(_ shell: Shell) async throws -> Int64 {
    let engine = shell.engine as! RustEngine
    let s = await engine.inner.awaitSnapshot(timeout: 15) { s in
        guard let lease = s.leaseUntil else { return false }
        return lease - engine.serverTimeNow() > 120_000
    }
    guard let lease = s?.leaseUntil else { throw HarnessError(description: "no background lease: \(engine.snapshot)") }
    return lease
}
