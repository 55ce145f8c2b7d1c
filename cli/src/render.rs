//! Text views of snapshots and chat boxes, for `status`, `show`, `watch` and `chatbox`.

use std::fmt::Write;

use presence_core::{ChatboxView, ClientSnapshot, Connection, SessionState};

/// `busy (confirmed, version 4)` / `busy (pending; the server has online)`.
pub fn status_line(s: &ClientSnapshot) -> String {
    match &s.status {
        None => "unknown".to_owned(),
        Some(st) if st.pending => format!(
            "{} (pending: not yet confirmed by the server, which has {})",
            st.current, st.confirmed
        ),
        Some(st) => format!("{} (confirmed, version {})", st.current, st.version),
    }
}

pub fn connection(c: Connection) -> &'static str {
    match c {
        Connection::Connected => "connected",
        Connection::Connecting => "connecting",
        Connection::Offline => "offline (server unreachable)",
        Connection::NoNetwork => "no network",
    }
}

/// `online (agents_online)`, then one indented line per group.
pub fn chatbox(c: &ChatboxView, indent: &str) -> String {
    let mut out = format!(
        "{} ({}){}",
        c.status.as_str(),
        reason(c),
        message(&c.message)
    );
    for g in &c.groups {
        let _ = write!(
            out,
            "\n{indent}{:<12} {} ({}){}",
            g.key,
            g.status.as_str(),
            json_name(&g.reason),
            message(&g.message)
        );
    }
    out
}

/// `: "the message"` when the chat box carries one (busy or offline), else nothing.
fn message(m: &Option<String>) -> String {
    match m {
        Some(m) => format!(": {m:?}"),
        None => String::new(),
    }
}

/// One line: `online (agents_online)  sales=online support=busy`.
pub fn chatbox_line(c: &ChatboxView) -> String {
    let mut out = format!(
        "{} ({}){}",
        c.status.as_str(),
        reason(c),
        message(&c.message)
    );
    for g in &c.groups {
        let _ = write!(out, "  {}={}", g.key, g.status.as_str());
    }
    out
}

fn reason(c: &ChatboxView) -> String {
    json_name(&c.reason)
}

fn json_name<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// The full multi-line view used by `show` and `watch`. `server_now` turns `lease_until` into
/// a countdown.
pub fn full(s: &ClientSnapshot, server_now: i64) -> String {
    let mut out = String::new();
    let who = match (&s.session.agent, &s.session.account) {
        (Some(a), Some(acct)) => format!("{} <{}> on {}", a.name, a.email, acct),
        _ => "nobody".to_owned(),
    };
    let state = match s.session.state {
        SessionState::LoggedOut => "logged out",
        SessionState::Active => "logged in",
        SessionState::Expired => "session expired: log in again",
    };
    let _ = writeln!(out, "session:    {state} ({who})");
    let _ = writeln!(out, "status:     {}", status_line(s));
    let _ = writeln!(out, "connection: {}", connection(s.connection));
    let lease = match s.lease_until {
        Some(until) => {
            let left = (until - server_now).max(0);
            format!("{} s left", (left + 999) / 1000)
        }
        None => "none".to_owned(),
    };
    let _ = writeln!(out, "lease:      {lease} ({})", json_name(&s.lifecycle));
    let chat = match &s.chatbox {
        Some(c) => chatbox(c, "              "),
        None => "unknown".to_owned(),
    };
    let _ = writeln!(out, "chat box:   {chat}");
    let _ = write!(
        out,
        "outbox:     {} pending, {} wedged",
        s.outbox.pending,
        s.outbox.wedged.len()
    );
    for w in &s.outbox.wedged {
        let _ = write!(
            out,
            "\n              {} {}: {} {}",
            w.op_id,
            w.kind.as_str(),
            w.code,
            w.detail
        );
    }
    if let Some(e) = &s.last_error {
        let _ = write!(
            out,
            "\nlast error: {}: {}",
            e.code,
            crate::one_line(&e.detail)
        );
    }
    out
}
