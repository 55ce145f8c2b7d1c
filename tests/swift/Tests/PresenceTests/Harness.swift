import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Presence
import XCTest

// What only the binding tests need; the server harness is the shared
// test-support/swift/TestServer.swift (linked here).

func config(_ serverUrl: String, name: String = "swift test device") -> ClientConfig {
    ClientConfig(
        serverUrl: serverUrl,
        dataDir: tempDir(),
        device: DeviceInfo(platform: .ios, name: name, appVersion: "test"),
        tuning: ClientTuning(
            requestTimeoutMs: 5000, backoffBaseMs: 100, backoffCapMs: 500,
            sseIdleTimeoutMs: nil, clockSkewMs: nil)
    )
}

/// A loopback port nothing listens on (discard, never served here): connections are refused.
func deadServerUrl() -> String { "http://127.0.0.1:9" }

/// Collects log records from the engine.
final class CollectingSink: LogSink, @unchecked Sendable {
    private let lock = NSLock()
    private var records: [LogRecord] = []

    func log(record: LogRecord) throws {
        lock.lock()
        records.append(record)
        lock.unlock()
    }

    var all: [LogRecord] {
        lock.lock()
        defer { lock.unlock() }
        return records
    }
}
