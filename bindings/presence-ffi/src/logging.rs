//! Logging: presence-core's `tracing` events forwarded to a foreign [`LogSink`] (the app's
//! logger), to logcat on Android and to the unified log (os_log) on Apple platforms, plus
//! panics logged before they unwind.
//!
//! [`init_logging`] installs one global subscriber the first time it is called; later calls
//! only swap the sink and the level, so an app can call it again after a configuration change.
//! The `level` applies to the engine's own targets (`presence_*`); other crates (HTTP, TLS)
//! are forwarded at `Warn` and above, and at every level only when `level` is `Trace`.

use std::cell::Cell;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Once, RwLock};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

use crate::error::PresenceError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, uniffi::Enum)]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    fn from_tracing(level: &Level) -> LogLevel {
        match *level {
            Level::ERROR => LogLevel::Error,
            Level::WARN => LogLevel::Warn,
            Level::INFO => LogLevel::Info,
            Level::DEBUG => LogLevel::Debug,
            Level::TRACE => LogLevel::Trace,
        }
    }

    fn from_u8(v: u8) -> LogLevel {
        match v {
            0 => LogLevel::Error,
            1 => LogLevel::Warn,
            2 => LogLevel::Info,
            3 => LogLevel::Debug,
            _ => LogLevel::Trace,
        }
    }
}

/// One log line: its level, where it comes from (`presence_core::engine`, `panic`, ...) and its
/// text (the event's message followed by its fields as `key=value`).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct LogRecord {
    pub level: LogLevel,
    pub target: String,
    pub text: String,
}

/// The app's logger. Called on whichever thread logged (often one of the crate's runtime
/// threads), never with a lock held. Logging from inside `log` is ignored rather than looped.
#[uniffi::export(with_foreign)]
pub trait LogSink: Send + Sync {
    fn log(&self, record: LogRecord) -> Result<(), PresenceError>;
}

static LEVEL: AtomicU8 = AtomicU8::new(LogLevel::Info as u8);
static SINK: RwLock<Option<Arc<dyn LogSink>>> = RwLock::new(None);
static INSTALL: Once = Once::new();

thread_local! {
    /// Set while this thread is inside a sink, so the sink's own logging cannot recurse.
    static IN_SINK: Cell<bool> = const { Cell::new(false) };
}

/// Starts (or reconfigures) log forwarding: events at `level` and above go to `sink` (if
/// any) and to the platform log. Also logs every panic (with its location) before it unwinds.
#[uniffi::export]
pub fn init_logging(level: LogLevel, sink: Option<Arc<dyn LogSink>>) {
    LEVEL.store(level as u8, Ordering::Relaxed);
    *SINK.write().unwrap_or_else(|p| p.into_inner()) = sink;
    INSTALL.call_once(|| {
        let subscriber = tracing_subscriber::registry().with(ForwardLayer);
        // Another global subscriber (a host that set one up itself) wins; ours stays unused.
        let _ = tracing::subscriber::set_global_default(subscriber);
        install_panic_hook();
    });
    tracing::debug!(target: "presence_ffi", "logging at {level:?}");
}

fn enabled(metadata: &Metadata<'_>) -> bool {
    let level = LogLevel::from_tracing(metadata.level());
    let max = LogLevel::from_u8(LEVEL.load(Ordering::Relaxed));
    let ours = metadata.target().starts_with("presence") || metadata.target() == "panic";
    if ours || max == LogLevel::Trace {
        level <= max
    } else {
        level <= LogLevel::Warn.min(max)
    }
}

/// Logs panics through tracing (so they reach the sink and the platform log), then runs the
/// hook that was there before.
fn install_panic_hook() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let text = crate::panic_text(info.payload());
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_else(|| "unknown location".into());
        let thread = std::thread::current();
        let thread = thread.name().unwrap_or("unnamed");
        tracing::error!(target: "panic", "thread '{thread}' panicked at {location}: {text}");
        previous(info);
    }));
}

struct ForwardLayer;

impl<S: Subscriber> Layer<S> for ForwardLayer {
    fn register_callsite(
        &self,
        _metadata: &'static Metadata<'static>,
    ) -> tracing::subscriber::Interest {
        // The level can change at run time, so ask `enabled` every time.
        tracing::subscriber::Interest::sometimes()
    }

    fn enabled(&self, metadata: &Metadata<'_>, _ctx: Context<'_, S>) -> bool {
        enabled(metadata)
    }

    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        if IN_SINK.with(Cell::get) {
            return;
        }
        let metadata = event.metadata();
        if !enabled(metadata) {
            return;
        }
        let mut text = TextVisitor::default();
        event.record(&mut text);
        let record = LogRecord {
            level: LogLevel::from_tracing(metadata.level()),
            target: metadata.target().to_owned(),
            text: text.finish(),
        };
        platform::write(&record);
        // Clone the sink out so it runs with no lock held.
        let sink = SINK.read().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some(sink) = sink {
            IN_SINK.with(|f| f.set(true));
            // A failing sink has nowhere better to report to; drop the error.
            let _ = sink.log(record);
            IN_SINK.with(|f| f.set(false));
        }
    }
}

/// Renders an event as `message key=value key=value`.
#[derive(Default)]
struct TextVisitor {
    message: String,
    fields: String,
}

impl TextVisitor {
    fn finish(self) -> String {
        match (self.message.is_empty(), self.fields.is_empty()) {
            (_, true) => self.message,
            (true, false) => self.fields,
            (false, false) => format!("{} {}", self.message, self.fields),
        }
    }
}

impl Visit for TextVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            self.push_field(field, format_args!("{value}"));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            self.push_field(field, format_args!("{value:?}"));
        }
    }
}

impl TextVisitor {
    fn push_field(&mut self, field: &Field, value: std::fmt::Arguments<'_>) {
        if !self.fields.is_empty() {
            self.fields.push(' ');
        }
        let _ = write!(self.fields, "{}={value}", field.name());
    }
}

#[cfg(target_os = "android")]
mod platform {
    //! logcat, tag `presence`.
    use super::{LogLevel, LogRecord};
    use android_log_sys::{__android_log_write, LogPriority};
    use std::ffi::CString;
    use std::os::raw::c_int;

    // The one unsafe call of the crate: logcat's C entry point.
    #[allow(unsafe_code)]
    pub fn write(record: &LogRecord) {
        let priority = match record.level {
            LogLevel::Error => LogPriority::ERROR,
            LogLevel::Warn => LogPriority::WARN,
            LogLevel::Info => LogPriority::INFO,
            LogLevel::Debug => LogPriority::DEBUG,
            LogLevel::Trace => LogPriority::VERBOSE,
        } as c_int;
        let line = format!("{}: {}", record.target, record.text).replace('\0', " ");
        let (Ok(tag), Ok(text)) = (CString::new("presence"), CString::new(line)) else {
            return;
        };
        // SAFETY: both pointers are valid NUL-terminated strings for the duration of the call.
        unsafe {
            __android_log_write(priority, tag.as_ptr(), text.as_ptr());
        }
    }
}

#[cfg(target_vendor = "apple")]
mod platform {
    //! The unified log: subsystem `dev.presence`, category `engine`, the target in the text.
    use super::{LogLevel, LogRecord};
    use oslog::{Level, OsLog};
    use std::sync::LazyLock;

    static LOG: LazyLock<OsLog> = LazyLock::new(|| OsLog::new("dev.presence", "engine"));

    pub fn write(record: &LogRecord) {
        let level = match record.level {
            LogLevel::Error => Level::Error,
            LogLevel::Warn => Level::Default,
            LogLevel::Info => Level::Info,
            LogLevel::Debug | LogLevel::Trace => Level::Debug,
        };
        LOG.with_level(level, &format!("{}: {}", record.target, record.text));
    }
}

#[cfg(not(any(target_os = "android", target_vendor = "apple")))]
mod platform {
    //! Desktop and tests: the foreign sink is the only destination.
    pub fn write(_record: &super::LogRecord) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    struct Collect(Mutex<Vec<LogRecord>>);

    impl LogSink for Collect {
        fn log(&self, record: LogRecord) -> Result<(), PresenceError> {
            // Logging from inside the sink must not loop back into it.
            tracing::info!(target: "presence_ffi", "inside the sink");
            self.0.lock().unwrap().push(record);
            Ok(())
        }
    }

    #[test]
    fn events_reach_the_sink_filtered_by_level_and_target() {
        let sink = Arc::new(Collect(Mutex::new(Vec::new())));
        init_logging(LogLevel::Debug, Some(sink.clone()));
        tracing::debug!(target: "presence_core::engine", op = 7, "sent");
        tracing::trace!(target: "presence_core::engine", "too fine");
        tracing::debug!(target: "hyper::proto", "not ours");
        tracing::warn!(target: "hyper::proto", "ours to see");
        let seen = sink.0.lock().unwrap().clone();
        let texts: Vec<&str> = seen.iter().map(|r| r.text.as_str()).collect();
        assert!(texts.contains(&"sent op=7"), "{texts:?}");
        assert!(texts.contains(&"ours to see"), "{texts:?}");
        assert!(!texts.contains(&"too fine"), "{texts:?}");
        assert!(!texts.contains(&"not ours"), "{texts:?}");
        assert!(!texts.contains(&"inside the sink"), "{texts:?}");
        let sent = seen.iter().find(|r| r.text == "sent op=7").unwrap();
        assert_eq!(sent.level, LogLevel::Debug);
        assert_eq!(sent.target, "presence_core::engine");
    }
}
