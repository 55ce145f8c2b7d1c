//! The command line contract (see docs/CLI.md).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use presence_core::AgentStatus;

#[derive(Debug, Parser)]
#[command(
    name = "presence",
    version,
    about = "Presence desktop agent: set your chat availability and watch your chat box",
    propagate_version = true
)]
pub struct Cli {
    /// Where this device keeps its session and unsent changes [default: the per-user data dir]
    #[arg(long, env = "PRESENCE_DATA_DIR", global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Presence server URL, e.g. http://127.0.0.1:8080 [default: the one used at login]
    #[arg(long, env = "PRESENCE_SERVER", global = true, value_name = "URL")]
    pub server: Option<String>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Log this device in, with an email and password, or with a token your company's
    /// sign-in issued (--token-file)
    #[command(group(clap::ArgGroup::new("proof").required(true).args(["password", "password_stdin", "token_file"])))]
    Login {
        /// Account slug
        #[arg(long)]
        account: String,
        /// Your email (with a password)
        #[arg(
            long,
            required_unless_present = "token_file",
            conflicts_with = "token_file"
        )]
        email: Option<String>,
        /// Password (visible in the process list; prefer --password-stdin)
        #[arg(long)]
        password: Option<String>,
        /// Read the password from the first line of stdin
        #[arg(long)]
        password_stdin: bool,
        /// Sign in with the token (a JWT) in this file, issued by your company's sign-in;
        /// `-` reads it from stdin
        #[arg(long, value_name = "FILE")]
        token_file: Option<std::path::PathBuf>,
    },
    /// Show your status, or set it (exits 0 once the change is stored, even if the server is
    /// unreachable; it is then delivered later)
    Status {
        #[arg(value_enum)]
        status: Option<StatusArg>,
        /// How long the status lasts: 90s, 30m, 1h30m, 2d (1 s to 7 days)
        #[arg(long = "for", value_name = "DURATION", value_parser = parse_duration, requires = "status", conflicts_with = "until")]
        duration: Option<Duration>,
        /// When the status ends, local time today (tomorrow if already past): 14:30
        #[arg(long, value_name = "HH:MM", value_parser = parse_clock, requires = "status")]
        until: Option<ClockTime>,
        /// What the status becomes when it ends [default: the status before it]
        #[arg(long, value_enum, value_name = "STATUS", requires = "status")]
        then: Option<StatusArg>,
        /// One of the account's custom statuses (its id, e.g. lunch; `presence show` lists them)
        #[arg(long, value_name = "ID", requires = "status")]
        custom: Option<String>,
        /// A note for your teammates (at most 100 characters; never shown to visitors)
        #[arg(long, value_name = "TEXT", requires = "status")]
        note: Option<String>,
    },
    /// Print your status log, newest first
    Log {
        /// How many entries per page (1 to 500)
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=500))]
        limit: u32,
        /// Start after this page (the cursor the previous page printed)
        #[arg(long, value_name = "CURSOR")]
        after: Option<String>,
        /// Print the page as JSON (`{"entries": [...], "next": ...}`)
        #[arg(long)]
        json: bool,
    },
    /// Show everything this device knows
    Show {
        /// Print the snapshot as JSON
        #[arg(long)]
        json: bool,
    },
    /// Deliver stored changes; exits 0 when none are left, 3 if some are still pending
    Sync {
        /// Give up after this long
        #[arg(long, default_value_t = 10_000, value_name = "N")]
        timeout_ms: u64,
    },
    /// Live view until Ctrl-C, keeping the session alive
    Watch,
    /// Log this device out
    Logout,
    /// List stored changes; retry or discard one the server refused
    Outbox {
        #[command(subcommand)]
        action: Option<OutboxAction>,
    },
    /// Reports for owners and admins of the account
    Report {
        #[command(subcommand)]
        report: ReportKind,
    },
    /// Show a chat box as visitors see it
    Chatbox {
        widget_key: String,
        /// Keep printing every change until Ctrl-C
        #[arg(long)]
        watch: bool,
        /// Print the view as JSON
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ReportKind {
    /// Time each agent was online, busy, offline and signed out, per day
    Availability {
        /// Start: a date (YYYY-MM-DD, midnight in --tz), an RFC 3339 time, or ms since the
        /// epoch [default: seven days before --to]
        #[arg(long, value_parser = parse_when)]
        from: Option<When>,
        /// End (exclusive), as --from [default: now]
        #[arg(long, value_parser = parse_when)]
        to: Option<When>,
        /// IANA time zone the days are counted in [default: the account's]
        #[arg(long, value_name = "ZONE")]
        tz: Option<String>,
        /// Only the agents who count for this group
        #[arg(long, value_name = "KEY")]
        group: Option<String>,
        /// Print CSV, one row per agent and day (as the server gives it)
        #[arg(long, conflicts_with = "json")]
        csv: bool,
        /// Print the report as JSON
        #[arg(long)]
        json: bool,
    },
}

/// A time as the command line takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum When {
    /// A calendar date, midnight in the report's time zone.
    Date(chrono::NaiveDate),
    /// An instant, ms since the epoch.
    At(i64),
}

/// `YYYY-MM-DD`, an RFC 3339 time, or ms since the epoch.
pub fn parse_when(s: &str) -> Result<When, String> {
    if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(When::Date(d));
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(When::At(t.timestamp_millis()));
    }
    s.parse::<i64>().map(When::At).map_err(|_| {
        format!("`{s}`: write a date (2026-12-01), an RFC 3339 time (2026-12-01T09:00:00Z) or ms since the epoch")
    })
}

#[derive(Debug, Subcommand)]
pub enum OutboxAction {
    /// Put a refused (wedged) change back in the queue
    Retry { op_id: String },
    /// Delete a refused (wedged) change
    Discard { op_id: String },
}

/// The longest timed status the protocol accepts.
const MAX_DURATION: Duration = Duration::from_secs(7 * 86_400);

/// A duration as people write it: one or more `<number><unit>` with units `d`, `h`, `m`, `s`
/// (`90s`, `30m`, `1h30m`, `2d`), from 1 s to 7 days.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("{s:?} is not a duration: write e.g. 90s, 30m, 1h30m or 2d");
    let mut total: u64 = 0;
    let mut digits = String::new();
    let mut parts = 0;
    for c in s.trim().chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = match c {
            'd' => 86_400,
            'h' => 3_600,
            'm' => 60,
            's' => 1,
            _ => return Err(bad()),
        };
        let n: u64 = digits.parse().map_err(|_| bad())?;
        digits.clear();
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(bad)?;
        parts += 1;
    }
    if !digits.is_empty() {
        return Err(format!(
            "{s:?} has no unit: write e.g. {digits}m (units d, h, m, s)"
        ));
    }
    if parts == 0 {
        return Err(bad());
    }
    let d = Duration::from_secs(total);
    if d < Duration::from_secs(1) {
        return Err("a timed status lasts at least 1s".into());
    }
    if d > MAX_DURATION {
        return Err(format!(
            "{s:?} is longer than 7 days, the longest timed status"
        ));
    }
    Ok(d)
}

/// A wall-clock time of day, `HH:MM` (24-hour).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClockTime {
    pub hour: u32,
    pub minute: u32,
}

pub fn parse_clock(s: &str) -> Result<ClockTime, String> {
    let bad = || format!("{s:?} is not a time of day: write HH:MM, e.g. 14:30");
    let (h, m) = s.trim().split_once(':').ok_or_else(bad)?;
    if h.is_empty() || h.len() > 2 || m.len() != 2 {
        return Err(bad());
    }
    let hour: u32 = h.parse().map_err(|_| bad())?;
    let minute: u32 = m.parse().map_err(|_| bad())?;
    if hour > 23 || minute > 59 {
        return Err(bad());
    }
    Ok(ClockTime { hour, minute })
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum StatusArg {
    Online,
    Busy,
    Offline,
}

impl From<StatusArg> for AgentStatus {
    fn from(s: StatusArg) -> AgentStatus {
        match s {
            StatusArg::Online => AgentStatus::Online,
            StatusArg::Busy => AgentStatus::Busy,
            StatusArg::Offline => AgentStatus::Offline,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn login_needs_exactly_one_password_source() {
        let base = ["presence", "login", "--account", "a", "--email", "e"];
        assert!(Cli::try_parse_from(base).is_err());
        assert!(Cli::try_parse_from(base.iter().chain(&["--password", "p"])).is_ok());
        assert!(Cli::try_parse_from(base.iter().chain(&["--password-stdin"])).is_ok());
        assert!(
            Cli::try_parse_from(base.iter().chain(&["--password", "p", "--password-stdin"]))
                .is_err()
        );
        assert!(
            Cli::try_parse_from(base.iter().chain(&["--password", "p", "--token-file", "t"]))
                .is_err(),
            "a password and a token"
        );
    }

    #[test]
    fn a_token_login_needs_no_email() {
        let token = [
            "presence",
            "login",
            "--account",
            "a",
            "--token-file",
            "t.jwt",
        ];
        assert!(Cli::try_parse_from(token).is_ok());
        let with_email = [
            "presence",
            "login",
            "--account",
            "a",
            "--email",
            "e",
            "--token-file",
            "t",
        ];
        assert!(Cli::try_parse_from(with_email).is_err());
        assert!(Cli::try_parse_from(["presence", "login", "--account", "a"]).is_err());
    }

    #[test]
    fn global_flags_go_anywhere() {
        let c =
            Cli::try_parse_from(["presence", "status", "busy", "--server", "http://x"]).unwrap();
        assert_eq!(c.server.as_deref(), Some("http://x"));
        assert!(matches!(
            c.command,
            Command::Status {
                status: Some(StatusArg::Busy),
                ..
            }
        ));
        assert!(Cli::try_parse_from(["presence", "status", "away"]).is_err());
    }

    #[test]
    fn durations_are_written_as_people_write_them() {
        let s = Duration::from_secs;
        for (text, want) in [
            ("90s", s(90)),
            ("30m", s(1_800)),
            ("1h30m", s(5_400)),
            ("2d", s(172_800)),
            ("1h0m5s", s(3_605)),
            ("7d", s(604_800)),
        ] {
            assert_eq!(parse_duration(text), Ok(want), "{text}");
        }
        for (text, says) in [
            ("30", "no unit"),
            ("", "not a duration"),
            ("m", "not a duration"),
            ("30x", "not a duration"),
            ("1.5h", "not a duration"),
            ("0s", "at least 1s"),
            ("8d", "longer than 7 days"),
            ("99999999999999999999d", "not a duration"),
        ] {
            let e = parse_duration(text).unwrap_err();
            assert!(e.contains(says), "{text}: {e}");
        }
    }

    #[test]
    fn times_of_day_are_hh_mm() {
        assert_eq!(
            parse_clock("14:30"),
            Ok(ClockTime {
                hour: 14,
                minute: 30
            })
        );
        assert_eq!(parse_clock("9:05").unwrap().hour, 9);
        for bad in ["24:00", "14:60", "1430", "14:3", "", "ab:cd", "-1:30"] {
            assert!(parse_clock(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn timing_flags_need_a_status_and_for_excludes_until() {
        let p =
            |args: &[&str]| Cli::try_parse_from(["presence", "status"].iter().chain(args).copied());
        assert!(
            p(&[
                "busy", "--for", "30m", "--then", "online", "--custom", "lunch", "--note", "x"
            ])
            .is_ok()
        );
        assert!(p(&["busy", "--until", "14:30"]).is_ok());
        assert!(p(&["--for", "30m"]).is_err());
        assert!(p(&["--note", "x"]).is_err());
        assert!(p(&["busy", "--for", "30m", "--until", "14:30"]).is_err());
        assert!(p(&["busy", "--for", "30"]).is_err());
        assert!(p(&["busy", "--then", "away"]).is_err());
    }
}
