//! `uniffi-bindgen`, built from the same uniffi version as presence-ffi so the generated code
//! always matches the library's scaffolding. Run through `cargo xtask bindings`, or by hand:
//!
//! ```text
//! cargo run -p uniffi-bindgen -- generate --no-format target/debug/libpresence_ffi.so \
//!     --language kotlin --out-dir target/bindings/kotlin
//! ```

fn main() {
    uniffi::uniffi_bindgen_main()
}
