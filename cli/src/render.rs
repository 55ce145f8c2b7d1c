//! Text views of snapshots, chat boxes and the status log, for `status`, `show`, `watch`,
//! `log` and `chatbox`. Times are shown in the local time zone (`TZ`, else the system's).

use std::fmt::Write;

use chrono::{DateTime, Local, TimeZone};
use presence_core::{
    Cause, ChatboxView, ClientSnapshot, Connection, CustomStatus, SessionState, StatusLogEntry,
};

/// `busy (confirmed, version 4)`; a timed one `busy until 14:30 (24 min left), then online —
/// 🥪 Lunch — "back soon" (confirmed, version 5)`; a pending one `busy (pending: not yet
/// confirmed by the server, which has online)`; the cause when it is not the agent's own
/// choice: `(confirmed, version 6, set by an admin)`.
pub fn status_line(s: &ClientSnapshot, server_now: i64) -> String {
    let Some(st) = &s.status else {
        return "unknown".to_owned();
    };
    let what = described(
        st.current.as_str(),
        st.until,
        st.then.map(|t| t.as_str()),
        st.custom_status.as_deref(),
        st.note.as_deref(),
        &s.custom_statuses,
        server_now,
    );
    if st.pending {
        return format!(
            "{what} (pending: not yet confirmed by the server, which has {})",
            st.confirmed
        );
    }
    match cause(st.cause, st.changed_by_agent.as_deref()) {
        Some(why) => format!("{what} (confirmed, version {}, {why})", st.version),
        None => format!("{what} (confirmed, version {})", st.version),
    }
}

/// A status with what goes with it: `busy until 14:30 (24 min left), then online — 🥪 Lunch —
/// "note"`. `server_now` turns `until` into the time left.
pub fn described(
    status: &str,
    until: Option<i64>,
    then: Option<&str>,
    custom: Option<&str>,
    note: Option<&str>,
    customs: &[CustomStatus],
    server_now: i64,
) -> String {
    let mut out = status.to_owned();
    if let Some(until) = until {
        let _ = write!(out, " until {}", local_time(until, server_now));
        if until > server_now {
            let _ = write!(out, " ({} left)", left(until - server_now));
        }
        if let Some(t) = then {
            let _ = write!(out, ", then {t}");
        }
    }
    if let Some(id) = custom {
        let _ = write!(out, " — {}", custom_label(id, customs));
    }
    if let Some(n) = note {
        let _ = write!(out, " — {n:?}");
    }
    out
}

/// Why the status is what it is, when it is not the agent's own choice on a device.
pub fn cause(c: Cause, by_agent: Option<&str>) -> Option<String> {
    match c {
        Cause::Manual => None,
        Cause::Admin => Some(match by_agent {
            Some(id) => format!("set by an admin ({id})"),
            None => "set by an admin".to_owned(),
        }),
        Cause::Timer => Some("a timed status ended".to_owned()),
        Cause::Idle => Some("set automatically: idle".to_owned()),
        Cause::Return => Some("back from idle".to_owned()),
    }
}

/// `🥪 Lunch` for a custom status the account lists, else its id.
fn custom_label(id: &str, customs: &[CustomStatus]) -> String {
    match customs.iter().find(|c| c.id == id) {
        Some(c) => match &c.emoji {
            Some(e) => format!("{e} {}", c.label),
            None => c.label.clone(),
        },
        None => id.to_owned(),
    }
}

/// `24 min`, `1 h 30 min`, `2 d 3 h`, `40 s`; rounded up to the unit shown.
pub fn left(ms: i64) -> String {
    let secs = (ms.max(0) + 999) / 1000;
    if secs < 60 {
        return format!("{secs} s");
    }
    let mins = (secs + 59) / 60;
    if mins < 60 {
        return format!("{mins} min");
    }
    let (h, m) = (mins / 60, mins % 60);
    if h < 24 {
        return match m {
            0 => format!("{h} h"),
            m => format!("{h} h {m} min"),
        };
    }
    let (d, h) = (h / 24, h % 24);
    match h {
        0 => format!("{d} d"),
        h => format!("{d} d {h} h"),
    }
}

/// A server time in the local zone: `14:30` today, `Tue 09:00` within a week,
/// `2026-12-24 09:00` further off.
pub fn local_time(ms: i64, server_now: i64) -> String {
    let (Some(t), Some(now)) = (local(ms), local(server_now)) else {
        return ms.to_string();
    };
    if t.date_naive() == now.date_naive() {
        t.format("%H:%M").to_string()
    } else if (t - now).num_days().abs() < 6 {
        t.format("%a %H:%M").to_string()
    } else {
        t.format("%Y-%m-%d %H:%M").to_string()
    }
}

fn local(ms: i64) -> Option<DateTime<Local>> {
    Local.timestamp_millis_opt(ms).single()
}

/// One status log entry: `2026-12-07 14:02:11  busy until 14:30, then online — "note"
/// (version 5, device d-1)`.
pub fn log_entry(e: &StatusLogEntry, customs: &[CustomStatus]) -> String {
    let v = &e.status;
    let at = local(e.applied_at).map_or_else(
        || e.applied_at.to_string(),
        |t| t.format("%Y-%m-%d %H:%M:%S").to_string(),
    );
    // The log is history: an end is shown as a time, not as time left.
    let mut what = v.status.as_str().to_owned();
    if let Some(until) = v.until {
        let _ = write!(what, " until {}", local_time(until, e.applied_at));
        if let Some(t) = v.then {
            let _ = write!(what, ", then {t}");
        }
    }
    if let Some(id) = &v.custom_status {
        let _ = write!(what, " — {}", custom_label(id, customs));
    }
    if let Some(n) = &v.note {
        let _ = write!(what, " — {n:?}");
    }
    let mut how = format!("version {}", v.version);
    match cause(v.cause, v.changed_by_agent.as_deref()) {
        Some(why) => {
            let _ = write!(how, ", {why}");
        }
        None => {
            if let Some(d) = &v.changed_by_device {
                let _ = write!(how, ", device {d}");
            }
        }
    }
    format!("{at}  {what} ({how})")
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
    let _ = writeln!(out, "status:     {}", status_line(s, server_now));
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
    if let Some(back) = s.chatbox.as_ref().and_then(|c| c.back_at) {
        let _ = writeln!(out, "back at:    {}", local_time(back, server_now));
    }
    if !s.custom_statuses.is_empty() {
        let list: Vec<String> = s
            .custom_statuses
            .iter()
            .map(|c| {
                let dur = c
                    .default_duration_ms
                    .map(|d| format!(", {}", left(d)))
                    .unwrap_or_default();
                format!(
                    "{} ({}, {}{dur})",
                    c.id,
                    custom_label(&c.id, std::slice::from_ref(c)),
                    c.base
                )
            })
            .collect();
        let _ = writeln!(out, "custom:     {}", list.join("; "));
    }
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

/// A duration as hours and minutes (`12:05`).
fn hours(ms: i64) -> String {
    let m = ms / 60_000;
    format!("{}:{:02}", m / 60, m % 60)
}

/// An availability report as a table: one line per agent, hours in each state.
pub fn availability(r: &presence_core::AvailabilityReport) -> Vec<String> {
    let from = chrono::DateTime::from_timestamp_millis(r.from).unwrap_or_default();
    let to = chrono::DateTime::from_timestamp_millis(r.to).unwrap_or_default();
    let mut lines = vec![format!(
        "{} to {} (UTC), days in {}",
        from.format("%Y-%m-%d %H:%M"),
        to.format("%Y-%m-%d %H:%M"),
        r.tz
    )];
    let width = r
        .agents
        .iter()
        .map(|a| a.name.chars().count())
        .max()
        .unwrap_or(0)
        .max(5);
    lines.push(format!(
        "{:<width$}  {:>9}  {:>9}  {:>9}  {:>10}",
        "agent", "online", "busy", "offline", "signed out"
    ));
    for a in &r.agents {
        let t = &a.time;
        lines.push(format!(
            "{:<width$}  {:>9}  {:>9}  {:>9}  {:>10}",
            a.name,
            hours(t.online_ms),
            hours(t.busy_ms),
            hours(t.offline_ms),
            hours(t.signed_out_ms)
        ));
    }
    if r.agents.is_empty() {
        lines.push("no agents".to_owned());
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_left_is_rounded_up_to_the_unit_shown() {
        for (ms, want) in [
            (0, "0 s"),
            (1, "1 s"),
            (40_000, "40 s"),
            (60_000, "1 min"),
            (23 * 60_000 + 1, "24 min"),
            (90 * 60_000, "1 h 30 min"),
            (3_600_000, "1 h"),
            (2 * 86_400_000 + 3 * 3_600_000, "2 d 3 h"),
        ] {
            assert_eq!(left(ms), want, "{ms}");
        }
    }

    #[test]
    fn a_timed_custom_status_with_a_note_reads_as_one_line() {
        let lunch = CustomStatus {
            id: "lunch".into(),
            label: "Lunch".into(),
            emoji: None,
            base: presence_core::AgentStatus::Busy,
            default_duration_ms: None,
        };
        let now = Local::now().timestamp_millis();
        let until = now + 24 * 60_000;
        let line = described(
            "busy",
            Some(until),
            Some("online"),
            Some("lunch"),
            Some("back soon"),
            &[lunch],
            now,
        );
        let hhmm = local(until).unwrap().format("%H:%M").to_string();
        let day = local(until).unwrap().format("%a %H:%M").to_string();
        assert!(
            line == format!("busy until {hhmm} (24 min left), then online — Lunch — \"back soon\"")
                || line
                    == format!(
                        "busy until {day} (24 min left), then online — Lunch — \"back soon\""
                    ),
            "{line}"
        );
        assert_eq!(
            described("online", None, None, Some("x"), None, &[], now),
            "online — x"
        );
    }
}
