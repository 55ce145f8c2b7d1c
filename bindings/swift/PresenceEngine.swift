// The app's handle on the Presence engine: the generated `PresenceClient` with its snapshots as
// an `AsyncStream<ClientSnapshot>` and every call as an async function.
//
// Snapshots are produced on the engine's own threads; iterate `snapshots()` from any task
// (`for await snapshot in engine.snapshots() { ... }`). The async functions do not block the
// caller: the work runs on the engine's runtime. Open one engine per data dir, keep it for the
// app's life, and `shutdown()` it when done; after that every call throws
// `PresenceError.Internal`.

import Foundation

public final class PresenceEngine: @unchecked Sendable {
    /// The generated client, for anything this wrapper does not cover.
    public let client: PresenceClient

    private init(client: PresenceClient) {
        self.client = client
    }

    /// Opens (creating or migrating) the engine's store in `config.dataDir` and starts it.
    public static func open(_ config: ClientConfig) async throws -> PresenceEngine {
        PresenceEngine(client: try await PresenceClient.open(config: config))
    }

    /// The latest snapshot.
    public var snapshot: ClientSnapshot { client.snapshot() }

    /// The id this device is known by (generated once per data dir).
    public var deviceId: String { client.deviceId() }

    /// The best estimate of the server's clock now (ms since the epoch), e.g. for a lease
    /// countdown against `snapshot.leaseUntil`.
    public func serverTimeNow() -> Int64 { client.serverTimeNow() }

    /// The current snapshot, then every new one, until the consuming task stops iterating.
    /// Each call returns a stream of its own. Bursts are coalesced to the newest snapshot.
    public func snapshots() -> AsyncStream<ClientSnapshot> {
        AsyncStream(bufferingPolicy: .bufferingNewest(1)) { continuation in
            let subscription = client.subscribe(listener: StreamListener(continuation))
            continuation.onTermination = { _ in subscription.cancel() }
        }
    }

    /// Waits until a snapshot satisfies `predicate` (the current one counts), for at most
    /// `timeout` seconds; nil if none did.
    public func awaitSnapshot(
        timeout: TimeInterval = 10,
        _ predicate: @escaping @Sendable (ClientSnapshot) -> Bool
    ) async -> ClientSnapshot? {
        let stream = snapshots()
        return await withTaskGroup(of: ClientSnapshot?.self) { group in
            group.addTask {
                for await snapshot in stream where predicate(snapshot) {
                    return snapshot
                }
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
    }

    public func login(account: String, email: String, password: String) async throws {
        try await client.login(account: account, email: email, password: password)
    }

    /// Signs in with a token (a JWT) the customer's own backend issued for the agent.
    public func loginWithToken(account: String, token: String) async throws {
        try await client.loginWithToken(account: account, token: token)
    }

    public func logout() async throws {
        try await client.logout()
    }

    /// Returns once the change is stored durably; delivery continues in the background.
    public func setStatus(_ status: AgentStatus) async throws {
        try await client.setStatus(status: status)
    }

    /// A status with a duration, what follows, a custom status or a note; stored durably like
    /// `setStatus`. A duration or note out of bounds throws `PresenceError.InvalidInput`.
    public func setStatusWith(_ request: StatusRequest) async throws {
        try await client.setStatusWith(request: request)
    }

    /// Desktop apps: how long the user has not touched the device (0 on input); nil stops it.
    public func reportIdle(_ idle: TimeInterval?) {
        client.reportIdle(idleMs: idle.map { UInt64(max(0, $0) * 1000) })
    }

    /// One page of the agent's status log, newest first; pass `next` as `after`.
    public func statusLog(limit: UInt32? = nil, after: String? = nil) async throws -> StatusLogPage {
        try await client.statusLog(limit: limit, after: after)
    }

    public func setLifecycle(_ lifecycle: Lifecycle) async {
        await client.setLifecycle(lifecycle: lifecycle)
    }

    public func setNetworkAvailable(_ available: Bool) async {
        await client.setNetworkAvailable(available: available)
    }

    /// Hands a push payload to the engine as text: the APNs `userInfo` as JSON, or just its
    /// `presence` object as JSON.
    public func handlePush(_ payload: String) async throws {
        try await client.handlePush(payload: payload)
    }

    /// Hands the `userInfo` of a background notification to the engine as it arrived.
    public func handlePush(userInfo: [AnyHashable: Any]) async throws {
        var object: [String: Any] = [:]
        for (key, value) in userInfo {
            if let key = key as? String { object[key] = value }
        }
        guard JSONSerialization.isValidJSONObject(object),
            let data = try? JSONSerialization.data(withJSONObject: object)
        else {
            throw PresenceError.InvalidInput(detail: "push userInfo is not JSON-serializable")
        }
        try await handlePush(String(decoding: data, as: UTF8.self))
    }

    /// For a BGAppRefreshTask: one heartbeat and an attempt to deliver queued changes.
    public func backgroundRefresh(deadline: TimeInterval) async throws {
        try await client.backgroundRefresh(deadlineMs: UInt64(max(0, deadline) * 1000))
    }

    /// Registers this device's push token: the APNs device token in hex, or for UnifiedPush
    /// the endpoint URL with the distributor's `keys`.
    public func registerPush(provider: PushProvider, token: String, keys: UnifiedPushKeys? = nil)
        async throws
    {
        try await client.registerPush(provider: provider, token: token, keys: keys)
    }

    public func refresh() async throws {
        try await client.refresh()
    }

    public func retryWedged(opId: String) async throws {
        try await client.retryWedged(opId: opId)
    }

    public func discardWedged(opId: String) async throws {
        try await client.discardWedged(opId: opId)
    }

    /// Stops the engine. Calls in flight end with `PresenceError.Internal`; changes they stored
    /// are delivered after the next `open`. Idempotent.
    public func shutdown() async {
        await client.shutdown()
    }
}

/// Feeds a listener's snapshots into an AsyncStream.
private final class StreamListener: PresenceListener, @unchecked Sendable {
    private let continuation: AsyncStream<ClientSnapshot>.Continuation

    init(_ continuation: AsyncStream<ClientSnapshot>.Continuation) {
        self.continuation = continuation
    }

    func onSnapshot(snapshot: ClientSnapshot) throws {
        continuation.yield(snapshot)
    }
}
