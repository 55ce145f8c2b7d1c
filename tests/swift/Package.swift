// swift-tools-version:5.9
// XCTest suite for the Presence Swift bindings. `cargo xtask test` assembles the rest of the
// package next to this file (see docs/BINDINGS-TESTING.md):
//   Sources/PresenceFFI/   the generated C header + module map linking libpresence_ffi
//   Sources/Presence/      the generated Swift + bindings/swift wrappers
// Swift 5 language mode: swiftlang 6.0.3 crashes on some generated async code in Swift 6 mode.
import PackageDescription

let package = Package(
    name: "PresenceTests",
    targets: [
        .systemLibrary(name: "PresenceFFI", path: "Sources/PresenceFFI"),
        .target(name: "Presence", dependencies: ["PresenceFFI"], path: "Sources/Presence"),
        .testTarget(name: "PresenceTests", dependencies: ["Presence"], path: "Tests/PresenceTests"),
    ]
)
