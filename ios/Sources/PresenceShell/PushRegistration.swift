// The push-token flow: `didRegisterForRemoteNotificationsWithDeviceToken` hands the token here,
// it goes to the engine's `registerPush` as hex (what APNs wants in the URL), and the engine
// stores it and sends it again at every later login. The same token twice is registered once.

import Foundation
import Presence

public struct PushChannel: Equatable, Sendable {
    public let provider: PushProvider
    public let token: String
}

public final class PushRegistration: @unchecked Sendable {
    private let engine: ShellEngine
    private let lock = NSLock()
    private var channel: PushChannel?
    private var refused: String?

    public init(engine: ShellEngine) { self.engine = engine }

    public var current: PushChannel? { locked { channel } }

    /// Why the latest token was refused, as a person reads it.
    public var problem: String? { locked { refused } }

    /// The APNs device token from `didRegisterForRemoteNotificationsWithDeviceToken`.
    @discardableResult
    public func onDeviceToken(_ token: Data) async -> Bool {
        await onNewToken(provider: .apns, token: Self.hex(token))
    }

    @discardableResult
    public func onNewToken(provider: PushProvider, token: String, keys: UnifiedPushKeys? = nil) async -> Bool {
        let next = PushChannel(provider: provider, token: token)
        if current == next { return true }
        do {
            try await engine.registerPush(provider: provider, token: token, keys: keys)
            locked {
                channel = next
                refused = nil
            }
            return true
        } catch {
            locked { refused = Messages.error(error) }
            return false
        }
    }

    /// APNs device tokens travel as lowercase hex.
    public static func hex(_ token: Data) -> String {
        token.map { String(format: "%02x", $0) }.joined()
    }

    private func locked<T>(_ f: () -> T) -> T {
        lock.lock()
        defer { lock.unlock() }
        return f()
    }
}
