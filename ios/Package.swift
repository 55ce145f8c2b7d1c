// swift-tools-version:5.9
// The iOS shell as a SwiftPM package:
//   PresenceFFI     the C side of the bindings: on Apple platforms the XCFramework that
//                   scripts/build-xcframework.sh builds; on Linux (tests) a system library
//   Presence        the generated Swift bindings + bindings/swift/PresenceEngine.swift, put in
//                   Sources/Presence/ by the script (or by `cargo xtask test`)
//   PresenceShell   the platform-free layer: view model, push router, background refresh plan
//   PresenceApp     the app glue (SwiftUI, AppDelegate, BGAppRefreshTask), behind canImport(UIKit)
// Swift 5 language mode: swiftlang 6.0.3 crashes on some generated async code in Swift 6 mode.
import PackageDescription

#if os(Linux)
let ffi: Target = .systemLibrary(name: "PresenceFFI", path: "Sources/PresenceFFI")
#else
let ffi: Target = .binaryTarget(name: "PresenceFFI", path: "build/PresenceFFI.xcframework")
#endif

let package = Package(
    name: "PresenceShell",
    platforms: [.iOS(.v15), .macOS(.v12)],
    products: [.library(name: "PresenceShell", targets: ["PresenceShell"])],
    targets: [
        ffi,
        .target(name: "Presence", dependencies: ["PresenceFFI"], path: "Sources/Presence"),
        .target(name: "PresenceShell", dependencies: ["Presence"], path: "Sources/PresenceShell"),
        .target(name: "PresenceApp", dependencies: ["PresenceShell"], path: "App", exclude: ["Presence.entitlements"]),
        .testTarget(name: "PresenceShellTests", dependencies: ["PresenceShell"], path: "Tests/PresenceShellTests"),
    ]
)
