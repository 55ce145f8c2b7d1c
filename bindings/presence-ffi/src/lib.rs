//! presence-ffi: the one library the Android and iOS apps link.
//!
//! A thin layer over [`presence_core`], exported with uniffi so the apps call the very same
//! engine the desktop CLI runs. Nothing here makes a decision about presence: each export
//! converts its arguments, forwards to presence-core and converts the answer back.
//!
//! What this crate guarantees to the foreign side:
//!
//! - **One runtime.** Every async export runs on a single multi-thread tokio runtime that the
//!   crate owns ([`runtime`]), created on first use. The engine's tasks (heartbeats, outbox,
//!   event stream) live there too, so foreign callers never need a runtime of their own.
//!   (`async_runtime = "tokio"` makes uniffi poll each export inside a tokio context; the
//!   exports only await a task spawned onto our runtime, so no work runs anywhere else.)
//! - **Callbacks never under a lock.** [`PresenceListener::on_snapshot`] and [`LogSink::log`]
//!   run on the runtime's threads with nothing locked, so a callback may call straight back
//!   into the client.
//! - **Errors as values.** Every failure is a [`PresenceError`] with a `detail` string; a Rust
//!   panic inside an export becomes `PresenceError::Internal`, never a dead process
//!   (`panic = "unwind"` in every profile).
//! - **Drop anywhere.** Objects may be released on a JVM finalizer (Cleaner) thread or any
//!   Swift thread; `Drop` enters the runtime first, so nothing that needs tokio can panic.
//!
//! The Kotlin (`StateFlow`) and Swift (`AsyncStream`) wrappers in `bindings/kotlin` and
//! `bindings/swift` sit on top of the generated code; `docs/BINDINGS.md` shows how to use them.

mod client;
mod error;
mod logging;
mod types;

use std::future::Future;
use std::sync::LazyLock;

pub use client::{PresenceClient, PresenceListener, SnapshotSubscription, stored_server_url};
pub use error::PresenceError;
pub use logging::{LogLevel, LogRecord, LogSink, init_logging};
pub use types::*;

uniffi::setup_scaffolding!();

static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("presence-rt")
        .enable_all()
        .build()
        .expect("presence-ffi cannot start its tokio runtime (no threads available?)")
});

/// The crate's tokio runtime: every async export and every engine task runs here.
pub fn runtime() -> &'static tokio::runtime::Runtime {
    &RUNTIME
}

/// Runs `work` on the crate's runtime and waits for it from whatever executor polls the
/// export. A panic inside `work` comes back as [`PresenceError::Internal`].
async fn on_runtime<T, F>(work: F) -> Result<T, PresenceError>
where
    T: Send + 'static,
    F: Future<Output = Result<T, PresenceError>> + Send + 'static,
{
    match runtime().spawn(work).await {
        Ok(result) => result,
        Err(e) if e.is_panic() => Err(PresenceError::Internal {
            detail: format!("presence-core panicked: {}", panic_text(&e.into_panic())),
        }),
        Err(_) => Err(PresenceError::Internal {
            detail: "the call was cancelled".into(),
        }),
    }
}

/// The text of a panic payload (`&str` or `String`), for error details and logs.
pub(crate) fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}
