#!/bin/sh
# Builds the Rust library for the Apple targets and wraps it as build/PresenceFFI.xcframework,
# and generates the Swift bindings into Sources/Presence/Generated (with the wrapper from
# bindings/swift). Run on a Mac with Xcode and rustup, from anywhere:
#   rustup target add aarch64-apple-ios aarch64-apple-ios-sim x86_64-apple-ios aarch64-apple-darwin
#   ios/scripts/build-xcframework.sh
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
repo=$(cd "$here/.." && pwd)
profile=release-small
cd "$repo"

for t in aarch64-apple-ios aarch64-apple-ios-sim x86_64-apple-ios aarch64-apple-darwin; do
    cargo build -p presence-ffi --profile "$profile" --target "$t"
done

# Bindings come from an unstripped host build (uniffi reads the library's metadata).
cargo build -p presence-ffi -p uniffi-bindgen
out="$here/build/swift"
rm -rf "$out" && mkdir -p "$out"
target/debug/uniffi-bindgen generate --no-format target/debug/libpresence_ffi.dylib --language swift --out-dir "$out"

headers="$here/build/headers"
rm -rf "$headers" && mkdir -p "$headers"
cp "$out/PresenceFFI.h" "$headers/"
printf 'module PresenceFFI {\n    header "PresenceFFI.h"\n    export *\n}\n' > "$headers/module.modulemap"

# One library per platform: the two simulator architectures are merged with lipo.
sim="$here/build/ios-sim"
mkdir -p "$sim"
lipo -create \
    "target/aarch64-apple-ios-sim/$profile/libpresence_ffi.a" \
    "target/x86_64-apple-ios/$profile/libpresence_ffi.a" \
    -output "$sim/libpresence_ffi.a"

rm -rf "$here/build/PresenceFFI.xcframework"
xcodebuild -create-xcframework \
    -library "target/aarch64-apple-ios/$profile/libpresence_ffi.a" -headers "$headers" \
    -library "$sim/libpresence_ffi.a" -headers "$headers" \
    -library "target/aarch64-apple-darwin/$profile/libpresence_ffi.a" -headers "$headers" \
    -output "$here/build/PresenceFFI.xcframework"

mkdir -p "$here/Sources/Presence/Generated"
cp "$out/Presence.swift" "$here/Sources/Presence/Generated/"
cp "$repo/bindings/swift/PresenceEngine.swift" "$here/Sources/Presence/"
echo "built $here/build/PresenceFFI.xcframework and Sources/Presence/"
