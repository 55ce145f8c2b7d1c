import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Presence
import XCTest

let adminToken = "swift-test-admin-token"

func setting(_ name: String) -> String {
    guard let v = ProcessInfo.processInfo.environment[name], !v.isEmpty else {
        fatalError("\(name) is not set (run the Swift tests through `cargo xtask test`)")
    }
    return v
}

struct Credentials {
    let account: String
    let email: String
    let password: String
}

struct HarnessError: Error, CustomStringConvertible {
    let description: String
}

/// The real presence-server binary on 127.0.0.1 with a data dir of its own. `stop()` kills it;
/// `start()` again reuses the same port and data dir, like a restart after a crash.
final class TestServer {
    private let dataDir: URL
    private var process: Process?
    private(set) var port = 0
    var url: String { "http://127.0.0.1:\(port)" }

    init() throws {
        dataDir = FileManager.default.temporaryDirectory
            .appendingPathComponent("presence-server-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dataDir, withIntermediateDirectories: true)
        try start()
    }

    func start() throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: setting("PRESENCE_SERVER_BIN"))
        p.arguments = [
            "--listen", "127.0.0.1:\(port)", "--admin-token", adminToken,
            "--data-dir", dataDir.path,
        ]
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        try p.run()
        process = p
        // Read until `listening on http://ADDR` (the server prints it once it accepts).
        let deadline = Date().addingTimeInterval(30)
        var buffer = Data()
        while Date() < deadline {
            let chunk = out.fileHandleForReading.availableData
            if chunk.isEmpty { break }  // EOF: the server exited
            buffer.append(chunk)
            let text = String(decoding: buffer, as: UTF8.self)
            if let line = text.split(separator: "\n").first(where: { $0.contains("listening on http://") }) {
                let addr = line.components(separatedBy: "listening on http://")[1]
                port = Int(addr.split(separator: ":").last!.trimmingCharacters(in: .whitespaces))!
                return
            }
        }
        throw HarnessError(description: "presence-server did not print its listening line")
    }

    /// SIGKILL, and wait until it is gone.
    func stop() {
        guard let p = process else { return }
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        process = nil
    }

    deinit {
        stop()
        try? FileManager.default.removeItem(at: dataDir)
    }

    /// Creates an account through the operator route; returns the owner's credentials.
    func createAccount() async throws -> Credentials {
        let slug = "s" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased().prefix(12)
        let creds = Credentials(account: slug, email: "owner@\(slug).example", password: "correct horse \(slug)")
        var request = URLRequest(url: URL(string: "\(url)/v1/accounts")!)
        request.httpMethod = "POST"
        request.setValue("Bearer \(adminToken)", forHTTPHeaderField: "Authorization")
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        let body: [String: Any] = [
            "name": "Swift \(slug)", "slug": slug,
            "owner": ["name": "Owner", "email": creds.email, "password": creds.password],
        ]
        request.httpBody = try JSONSerialization.data(withJSONObject: body)
        let status: Int = try await withCheckedThrowingContinuation { cont in
            URLSession.shared.dataTask(with: request) { _, response, error in
                if let error = error {
                    cont.resume(throwing: error)
                } else {
                    cont.resume(returning: (response as? HTTPURLResponse)?.statusCode ?? 0)
                }
            }.resume()
        }
        guard status == 201 else { throw HarnessError(description: "POST /v1/accounts: \(status)") }
        return creds
    }
}

/// Client data dirs made by the tests; `removeTempDirs()` deletes them after the suite.
private let tempDirsLock = NSLock()
nonisolated(unsafe) private var tempDirs: [URL] = []

func tempDir() -> String {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("presence-client-\(UUID().uuidString)")
    try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    tempDirsLock.lock()
    tempDirs.append(dir)
    tempDirsLock.unlock()
    return dir.path
}

func removeTempDirs() {
    tempDirsLock.lock()
    defer { tempDirsLock.unlock() }
    for dir in tempDirs {
        try? FileManager.default.removeItem(at: dir)
    }
    tempDirs.removeAll()
}

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
