// The one Swift test harness for a real server, shared by the binding tests
// (tests/swift/Tests/PresenceTests/TestServer.swift) and the iOS shell tests
// (ios/Tests/PresenceShellTests/TestServer.swift): both are links to this file, so each test
// target compiles the same harness (`cargo xtask test` copies its contents into the package).
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

let adminToken = "swift-test-admin-token"
/// The webhook provider may reach loopback hosts: how a device gets a background lease here
/// (the test server has no APNs key).
let webhookAllowed = ["--push-webhook-allow", "127.0.0.1"]

func setting(_ name: String) -> String {
    guard let v = ProcessInfo.processInfo.environment[name], !v.isEmpty else {
        fatalError("\(name) is not set (run these tests through `cargo xtask test`)")
    }
    return v
}

struct Credentials {
    let account: String
    let email: String
    let password: String
    let widgetKey: String
}

struct HarnessError: Error, CustomStringConvertible {
    let description: String
}

/// The real presence-server binary on 127.0.0.1 with a data dir of its own and the given extra
/// flags. `stop()` kills it (SIGKILL); `start()` again reuses the same port and data dir, like a
/// restart after a crash.
final class TestServer {
    private let dataDir: URL
    private var process: Process?
    private let flags: [String]
    private(set) var port = 0
    var url: String { "http://127.0.0.1:\(port)" }

    init(flags: [String] = webhookAllowed) throws {
        self.flags = flags
        dataDir = FileManager.default.temporaryDirectory.appendingPathComponent("presence-server-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dataDir, withIntermediateDirectories: true)
        try start()
    }

    func start() throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: setting("PRESENCE_SERVER_BIN"))
        p.arguments = ["--listen", "127.0.0.1:\(port)", "--admin-token", adminToken, "--data-dir", dataDir.path] + flags
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        try p.run()
        process = p
        let deadline = Date().addingTimeInterval(30)
        var buffer = Data()
        while Date() < deadline {
            let chunk = out.fileHandleForReading.availableData
            if chunk.isEmpty { break }
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

    func request(_ method: String, _ path: String, body: [String: Any]? = nil, token: String? = adminToken) async throws
        -> (Int, Data)
    {
        var r = URLRequest(url: URL(string: "\(url)\(path)")!)
        r.httpMethod = method
        if let token = token { r.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization") }
        if let body = body {
            r.setValue("application/json", forHTTPHeaderField: "Content-Type")
            r.httpBody = try JSONSerialization.data(withJSONObject: body)
        }
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

    /// Creates an account through the operator route: the owner's credentials, the widget key.
    func createAccount() async throws -> Credentials {
        let slug = "s" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased().prefix(12)
        let email = "owner@\(slug).example"
        let password = "correct horse \(slug)"
        let (status, data) = try await request(
            "POST", "/v1/accounts",
            body: [
                "name": "Test \(slug)", "slug": slug,
                "owner": ["name": "Owner", "email": email, "password": password],
            ])
        guard status == 201,
            let json = try JSONSerialization.jsonObject(with: data) as? [String: Any],
            let account = json["account"] as? [String: Any],
            let key = account["widget_key"] as? String
        else { throw HarnessError(description: "POST /v1/accounts: \(status)") }
        return Credentials(account: slug, email: email, password: password, widgetKey: key)
    }

    /// What the website's chat box shows now.
    func widgetStatus(_ c: Credentials) async throws -> String {
        let (_, data) = try await request("GET", "/v1/widget/\(c.widgetKey)/status", token: nil)
        let json = try JSONSerialization.jsonObject(with: data) as? [String: Any]
        return json?["status"] as? String ?? "?"
    }

    /// Heartbeats the server accepted so far.
    func heartbeats() async throws -> Int {
        let (_, data) = try await request("GET", "/metrics", token: nil)
        let text = String(decoding: data, as: UTF8.self)
        for line in text.split(separator: "\n") where line.hasPrefix("presence_heartbeats_total ") {
            return Int(line.split(separator: " ")[1]) ?? -1
        }
        return -1
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
    for dir in tempDirs { try? FileManager.default.removeItem(at: dir) }
    tempDirs.removeAll()
}
