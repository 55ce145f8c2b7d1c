//! One function per subcommand. Each opens the engine, does its one thing, and shuts the
//! engine down, so heartbeats and delivery happen while a command runs (and continuously
//! under `watch`).

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use presence_core::widget::{ChatboxStream, fetch_chatbox};
use presence_core::{
    ClientConfig, ClientError, ClientSnapshot, Connection, DeviceInfo, OpKind, Overrides, Platform,
    PresenceClient, SessionState, StatusRequest,
};

use crate::args::{Cli, ClockTime, Command, OutboxAction, ReportKind, When};
use crate::{idle, paths, render};

/// How long `status X` tries to deliver before reporting "pending".
const DELIVERY_WAIT: Duration = Duration::from_secs(4);
/// How long `status` and `show` wait for fresh data before showing what is stored.
const REFRESH_WAIT: Duration = Duration::from_secs(3);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// How often `watch` asks logind for the desktop's idle time.
const IDLE_POLL: Duration = Duration::from_secs(5);

/// Exit code of `sync` when changes are still pending.
const EXIT_PENDING: u8 = 3;

#[derive(Debug)]
pub struct CliError(String);

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<ClientError> for CliError {
    fn from(e: ClientError) -> CliError {
        let what = match &e {
            ClientError::Network { .. } => "cannot reach the server",
            ClientError::Unauthorized { .. } => "not authorized",
            ClientError::SessionExpired { .. } => "session expired (log in again)",
            ClientError::InvalidInput { .. } => "invalid input",
            ClientError::Storage { .. } => "local storage failed",
            ClientError::Server { .. } => "the server failed",
            ClientError::Internal { .. } => "internal error",
        };
        CliError(format!("{what}: {}", e.detail()))
    }
}

fn err(msg: impl Into<String>) -> CliError {
    CliError(msg.into())
}

type Result<T> = std::result::Result<T, CliError>;

pub async fn run(cli: Cli) -> Result<ExitCode> {
    let data_dir = match cli.data_dir.clone().or_else(paths::default_data_dir) {
        Some(d) => d,
        None => {
            return Err(err(
                "no data dir: pass --data-dir DIR or set PRESENCE_DATA_DIR",
            ));
        }
    };
    let ctx = Ctx {
        data_dir,
        server: cli.server.clone(),
    };
    match cli.command {
        Command::Login {
            account,
            email,
            password,
            password_stdin: _,
            token_file,
        } => {
            let proof = match (token_file, email, password) {
                (Some(file), _, _) => Proof::Token(read_token(&file)?),
                (None, Some(email), Some(p)) => Proof::Password(email, p),
                (None, Some(email), None) => Proof::Password(email, read_password()?),
                (None, None, _) => return Err(err("--email is needed with a password")),
            };
            login(&ctx, &account, proof).await
        }
        Command::Status { status: None, .. } => show_status(&ctx).await,
        Command::Status {
            status: Some(status),
            duration,
            until,
            then,
            custom,
            note,
        } => {
            let duration = match (duration, until) {
                (Some(d), _) => Some(d),
                (None, Some(t)) => Some(until_duration(t, chrono::Local::now())?),
                (None, None) => None,
            };
            let req = StatusRequest {
                status: status.into(),
                duration_ms: duration.map(|d| d.as_millis() as i64),
                then: then.map(Into::into),
                custom_status: custom,
                note,
            };
            set_status(&ctx, req).await
        }
        Command::Log { limit, after, json } => log(&ctx, limit, after, json).await,
        Command::Show { json } => show(&ctx, json).await,
        Command::Sync { timeout_ms } => sync(&ctx, Duration::from_millis(timeout_ms)).await,
        Command::Watch => watch(&ctx).await,
        Command::Logout => logout(&ctx).await,
        Command::Outbox { action } => outbox(&ctx, action).await,
        Command::Chatbox {
            widget_key,
            watch,
            json,
        } => chatbox(&ctx, &widget_key, watch, json).await,
        Command::Report {
            report:
                ReportKind::Availability {
                    from,
                    to,
                    tz,
                    group,
                    csv,
                    json,
                },
        } => availability_report(&ctx, (from, to), tz, group, (csv, json)).await,
    }
}

/// A command-line time as ms since the epoch: a date is midnight in `tz`.
fn when_ms(w: &When, tz: chrono_tz::Tz) -> Result<i64> {
    use chrono::TimeZone;
    match w {
        When::At(ms) => Ok(*ms),
        When::Date(d) => tz
            .from_local_datetime(&d.and_hms_opt(0, 0, 0).unwrap_or_default())
            .earliest()
            .map(|t| t.timestamp_millis())
            .ok_or_else(|| err(format!("{d} has no midnight in {tz}"))),
    }
}

async fn availability_report(
    ctx: &Ctx,
    (from, to): (Option<When>, Option<When>),
    tz: Option<String>,
    group: Option<String>,
    (csv, json): (bool, bool),
) -> Result<ExitCode> {
    // A date needs a zone: --tz, else UTC (said in the output's `tz`).
    let dates = matches!(from, Some(When::Date(_))) || matches!(to, Some(When::Date(_)));
    let tz = match (tz, dates) {
        (Some(t), _) => Some(t),
        (None, true) => Some("UTC".to_owned()),
        (None, false) => None,
    };
    let zone: chrono_tz::Tz = match &tz {
        Some(t) => t
            .parse()
            .map_err(|_| err(format!("--tz: `{t}` is not an IANA time zone")))?,
        None => chrono_tz::UTC,
    };
    let query = presence_core::ReportQuery {
        from: from.as_ref().map(|w| when_ms(w, zone)).transpose()?,
        to: to.as_ref().map(|w| when_ms(w, zone)).transpose()?,
        tz,
        group,
    };
    let client = ctx.open_logged_in().await?;
    let report = client.availability_report(query).await;
    client.shutdown().await;
    let report = report?;
    if csv {
        print!("{}", report.to_csv());
        return Ok(ExitCode::SUCCESS);
    }
    if json {
        let text = serde_json::to_string_pretty(&report)
            .map_err(|e| err(format!("cannot encode the report: {e}")))?;
        out(text);
        return Ok(ExitCode::SUCCESS);
    }
    for line in render::availability(&report) {
        out(line);
    }
    Ok(ExitCode::SUCCESS)
}

struct Ctx {
    data_dir: PathBuf,
    server: Option<String>,
}

impl Ctx {
    async fn open(&self) -> Result<PresenceClient> {
        let config = ClientConfig {
            server_url: self.server.clone(),
            data_dir: self.data_dir.clone(),
            device: DeviceInfo {
                platform: Platform::Cli,
                name: paths::device_name(),
                app_version: env!("CARGO_PKG_VERSION").to_owned(),
            },
            overrides: Overrides {
                request_timeout: REQUEST_TIMEOUT,
                // `watch` in one terminal, `status busy` in another: notice each other.
                store_poll_interval: Some(Duration::from_secs(1)),
                ..Overrides::default()
            },
        };
        Ok(PresenceClient::open(config).await?)
    }

    /// Opens the engine for a command that needs a session.
    async fn open_logged_in(&self) -> Result<PresenceClient> {
        let client = self.open().await?;
        if client.snapshot().session.state == SessionState::LoggedOut {
            client.shutdown().await;
            return Err(err("not logged in: run `presence login` first"));
        }
        Ok(client)
    }

    fn server_url(&self) -> Result<String> {
        if let Some(s) = &self.server {
            return Ok(s.clone());
        }
        PresenceClient::stored_server_url(&self.data_dir)?
            .ok_or_else(|| err("no server: pass --server URL or set PRESENCE_SERVER"))
    }
}

fn read_password() -> Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| err(format!("cannot read the password from stdin: {e}")))?;
    let p = line.trim_end_matches(['\n', '\r']).to_owned();
    if p.is_empty() {
        return Err(err("no password on stdin"));
    }
    Ok(p)
}

/// How `presence login` proves who the agent is.
enum Proof {
    /// Email and password.
    Password(String, String),
    /// A token (JWT) the company's sign-in issued.
    Token(String),
}

/// The token in `file` (`-`: stdin), surrounding whitespace removed.
fn read_token(file: &std::path::Path) -> Result<String> {
    let text = if file.as_os_str() == "-" {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin().lock(), &mut s)
            .map_err(|e| err(format!("cannot read the token from stdin: {e}")))?;
        s
    } else {
        std::fs::read_to_string(file).map_err(|e| {
            err(format!(
                "cannot read the token file {}: {e}",
                file.display()
            ))
        })?
    };
    let token = text.trim();
    if token.is_empty() {
        return Err(err(format!("no token in {}", file.display())));
    }
    Ok(token.to_owned())
}

fn out(line: impl AsRef<str>) {
    let mut o = std::io::stdout().lock();
    let _ = writeln!(o, "{}", line.as_ref());
    let _ = o.flush();
}

async fn login(ctx: &Ctx, account: &str, proof: Proof) -> Result<ExitCode> {
    let url = ctx.server_url()?;
    let client = ctx.open().await?;
    let done = match &proof {
        Proof::Password(email, password) => client.login(account, email, password).await,
        Proof::Token(token) => client.login_with_token(account, token).await,
    };
    if let Err(e) = done {
        client.shutdown().await;
        return Err(e.into());
    }
    // Changes stored while the previous session was expired go out with this one.
    let waiting = client.snapshot().outbox.pending;
    let snap = if waiting > 0 {
        client
            .wait_for(DELIVERY_WAIT, |s| s.outbox.pending == 0)
            .await
            .unwrap_or_else(|| client.snapshot())
    } else {
        client.snapshot()
    };
    client.shutdown().await;
    let name = snap
        .session
        .agent
        .as_ref()
        .map(|a| format!("{} <{}>", a.name, a.email))
        .unwrap_or_default();
    out(format!("logged in as {name} on account {account} at {url}"));
    if waiting > 0 {
        let left = snap.outbox.pending;
        out(format!(
            "delivered {} stored change(s){}",
            waiting.saturating_sub(left),
            if left > 0 {
                format!("; {left} still pending (`presence sync`)")
            } else {
                String::new()
            }
        ));
    }
    Ok(ExitCode::SUCCESS)
}

async fn show_status(ctx: &Ctx) -> Result<ExitCode> {
    let client = ctx.open_logged_in().await?;
    let fresh = refresh(&client).await;
    let s = client.snapshot();
    let now = client.server_time_now();
    client.shutdown().await;
    out(render::status_line(&s, now));
    if let Err(e) = fresh {
        eprintln!("presence: showing the last known status: {e}");
    }
    Ok(ExitCode::SUCCESS)
}

/// Asks the server for the latest, briefly. The error says why the stored view is shown.
async fn refresh(client: &PresenceClient) -> Result<()> {
    if client.snapshot().session.state == SessionState::Expired {
        return Err(err("the session has expired; log in again"));
    }
    match tokio::time::timeout(REFRESH_WAIT, client.refresh()).await {
        Ok(r) => Ok(r?),
        Err(_) => Err(err("the server did not answer in time")),
    }
}

/// How long from `now` until the next `t` on the local clock (today, or tomorrow if today's
/// has passed).
fn until_duration(t: ClockTime, now: chrono::DateTime<chrono::Local>) -> Result<Duration> {
    use chrono::{Days, TimeZone};
    let bad = || {
        err(format!(
            "--until {:02}:{:02}: no such local time",
            t.hour, t.minute
        ))
    };
    let at = |day: chrono::NaiveDate| {
        let naive = day.and_hms_opt(t.hour, t.minute, 0)?;
        // A time a DST change skips does not exist; one it repeats takes its first instance.
        chrono::Local.from_local_datetime(&naive).earliest()
    };
    let today = now.date_naive();
    let mut end = at(today).ok_or_else(bad)?;
    if end <= now {
        end = today
            .checked_add_days(Days::new(1))
            .and_then(at)
            .ok_or_else(bad)?;
    }
    let d = (end - now).to_std().map_err(|_| bad())?;
    // Whole seconds: `--until 14:30` at 14:29:59.6 is still a timed status of 1 s.
    Ok(Duration::from_secs(d.as_secs().max(1)))
}

async fn set_status(ctx: &Ctx, req: StatusRequest) -> Result<ExitCode> {
    let status = req.status;
    let client = ctx.open_logged_in().await?;
    client.set_status_with(req).await?;
    // Stored durably: from here on, the change survives anything.
    out(format!("{status}: stored"));

    // Try briefly to deliver, then say how it went.
    let settled = client
        .wait_for(DELIVERY_WAIT, |s| {
            let pending = s.status.as_ref().is_some_and(|st| st.pending);
            !pending
                || matches!(s.connection, Connection::Offline | Connection::NoNetwork)
                || s.session.state != SessionState::Active
        })
        .await;
    let s = settled.unwrap_or_else(|| client.snapshot());
    let now = client.server_time_now();
    client.shutdown().await;
    let Some(st) = &s.status else {
        return Err(err("no status known"));
    };
    if !st.pending && st.confirmed == status {
        out(format!("{status}: confirmed (version {})", st.version));
        if st.until.is_some() || st.custom_status.is_some() || st.note.is_some() {
            out(render::status_line(&s, now));
        }
    } else if !st.pending {
        if let Some(w) = s.outbox.wedged.iter().find(|w| w.kind == OpKind::SetStatus) {
            return Err(err(format!(
                "the server refused the change ({}: {}); see `presence outbox`",
                w.code, w.detail
            )));
        }
        out(format!(
            "{}: confirmed; your change to {status} was superseded by a newer one (version {})",
            st.confirmed, st.version
        ));
    } else {
        let why = if s.session.state == SessionState::Expired {
            "the session has expired; it is delivered after `presence login`".to_owned()
        } else {
            match &s.last_error {
                Some(e) => format!(
                    "server unreachable ({}); it is delivered by the next `presence sync` or `presence watch`",
                    e.code
                ),
                None => "not confirmed yet; it is delivered by the next `presence sync` or `presence watch`".to_owned(),
            }
        };
        out(format!("{status}: pending ({why})"));
    }
    Ok(ExitCode::SUCCESS)
}

async fn show(ctx: &Ctx, json: bool) -> Result<ExitCode> {
    let client = ctx.open().await?;
    let active = client.snapshot().session.state == SessionState::Active;
    let fresh = if active {
        refresh(&client).await
    } else {
        Ok(())
    };
    let s = client.snapshot();
    let now = client.server_time_now();
    client.shutdown().await;
    if json {
        let text = serde_json::to_string_pretty(&s)
            .map_err(|e| err(format!("cannot encode the snapshot: {e}")))?;
        out(text);
    } else {
        out(render::full(&s, now));
        if let Err(e) = fresh {
            eprintln!("presence: showing the last known state: {e}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn sync(ctx: &Ctx, timeout: Duration) -> Result<ExitCode> {
    let client = ctx.open().await?;
    let done = client
        .wait_for(timeout, |s| {
            s.outbox.pending == 0 || stuck_on_expired_session(s)
        })
        .await;
    let s = done.unwrap_or_else(|| client.snapshot());
    client.shutdown().await;
    for w in &s.outbox.wedged {
        eprintln!(
            "presence: the server refused change {} ({}: {}); it is kept until retried or discarded",
            w.op_id,
            w.code,
            render_detail(&w.detail)
        );
    }
    if s.outbox.pending == 0 {
        out("all changes delivered");
        return Ok(ExitCode::SUCCESS);
    }
    let why = if stuck_on_expired_session(&s) {
        "the session has expired; run `presence login`".to_owned()
    } else {
        match &s.last_error {
            Some(e) => format!("{}: {}", e.code, render_detail(&e.detail)),
            None => "no answer in time".to_owned(),
        }
    };
    eprintln!(
        "presence: {} change(s) still pending ({why})",
        s.outbox.pending
    );
    Ok(ExitCode::from(EXIT_PENDING))
}

fn render_detail(d: &str) -> String {
    crate::one_line(d)
}

/// Only changes of an expired session are left: waiting cannot deliver them.
fn stuck_on_expired_session(s: &ClientSnapshot) -> bool {
    s.session.state == SessionState::Expired && s.status.as_ref().is_some_and(|st| st.pending)
}

async fn log(ctx: &Ctx, limit: u32, after: Option<String>, json: bool) -> Result<ExitCode> {
    let client = ctx.open_logged_in().await?;
    let page = client.status_log(Some(limit), after).await;
    let customs = client.snapshot().custom_statuses;
    client.shutdown().await;
    let page = page?;
    if json {
        let text = serde_json::to_string_pretty(&page)
            .map_err(|e| err(format!("cannot encode the log: {e}")))?;
        out(text);
        return Ok(ExitCode::SUCCESS);
    }
    if page.entries.is_empty() {
        out("no status changes");
    }
    for e in &page.entries {
        out(render::log_entry(e, &customs));
    }
    if let Some(next) = &page.next {
        out(format!("more: presence log --limit {limit} --after {next}"));
    }
    Ok(ExitCode::SUCCESS)
}

async fn watch(ctx: &Ctx) -> Result<ExitCode> {
    let client = ctx.open_logged_in().await?;
    // Desktop activity from logind, if this machine has it (see `idle`).
    let mut idle_poll = tokio::time::interval(IDLE_POLL);
    idle_poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut reporting = false;
    let tty = std::io::stdout().is_terminal();
    let mut rx = client.subscribe();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut last_printed: Option<ClientSnapshot> = None;
    let stop = tokio::signal::ctrl_c();
    tokio::pin!(stop);
    loop {
        let snap = rx.borrow_and_update().clone();
        // On a terminal, redraw every second for the lease countdown; in a pipe, print only
        // when something changed.
        if tty || last_printed.as_ref() != Some(&snap) {
            let frame = render::full(&snap, client.server_time_now());
            if tty {
                out(format!("\x1b[2J\x1b[HPresence (Ctrl-C to quit)\n\n{frame}"));
            } else {
                out(format!("{frame}\n"));
            }
            last_printed = Some(snap);
        }
        tokio::select! {
            _ = &mut stop => break,
            changed = rx.changed() => if changed.is_err() { break },
            _ = tick.tick(), if tty => {}
            _ = idle_poll.tick() => {
                let idle = idle::read().await;
                if idle.is_some() || reporting {
                    client.report_idle(idle);
                }
                reporting = idle.is_some();
            }
        }
    }
    client.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

async fn outbox(ctx: &Ctx, action: Option<OutboxAction>) -> Result<ExitCode> {
    let client = ctx.open().await?;
    let result = match &action {
        None => Ok(()),
        Some(OutboxAction::Retry { op_id }) => client.retry_wedged(op_id).await,
        Some(OutboxAction::Discard { op_id }) => client.discard_wedged(op_id).await,
    };
    if result.is_ok() && matches!(action, Some(OutboxAction::Retry { .. })) {
        // Give the retried change its chance before reporting.
        client
            .wait_for(DELIVERY_WAIT, |s| {
                s.outbox.pending == 0
                    || matches!(s.connection, Connection::Offline | Connection::NoNetwork)
            })
            .await;
    }
    let s = client.snapshot();
    client.shutdown().await;
    result?;
    out(format!(
        "{} pending, {} refused",
        s.outbox.pending,
        s.outbox.wedged.len()
    ));
    for w in &s.outbox.wedged {
        out(format!(
            "refused {} {}: {} {}",
            w.op_id,
            w.kind.as_str(),
            w.code,
            render_detail(&w.detail)
        ));
    }
    Ok(ExitCode::SUCCESS)
}

async fn logout(ctx: &Ctx) -> Result<ExitCode> {
    let client = ctx.open().await?;
    if client.snapshot().session.state == SessionState::LoggedOut {
        client.shutdown().await;
        out("not logged in");
        return Ok(ExitCode::SUCCESS);
    }
    let result = client.logout().await;
    let s = client.snapshot();
    client.shutdown().await;
    result?;
    let queued = s.outbox.pending > 0;
    if queued {
        out(
            "logged out on this device; the server is told when it can be reached (`presence sync`)",
        );
    } else {
        out("logged out");
    }
    Ok(ExitCode::SUCCESS)
}

async fn chatbox(ctx: &Ctx, key: &str, watch: bool, json: bool) -> Result<ExitCode> {
    let url = ctx.server_url()?;
    let print = |v: &presence_core::ChatboxView| {
        if json {
            out(serde_json::to_string(v).unwrap_or_default());
        } else if watch {
            out(render::chatbox_line(v));
        } else {
            out(render::chatbox(v, "  "));
        }
    };
    if !watch {
        let view = fetch_chatbox(&url, key, REQUEST_TIMEOUT).await?;
        print(&view);
        return Ok(ExitCode::SUCCESS);
    }
    let stop = tokio::signal::ctrl_c();
    tokio::pin!(stop);
    let mut failures = 0u32;
    let mut last: Option<presence_core::ChatboxView> = None;
    loop {
        let session = async {
            // The server sends a `ping` event every 15 s; three missed ones mean the
            // connection is dead.
            let mut stream =
                ChatboxStream::open(&url, key, REQUEST_TIMEOUT, Duration::from_secs(45)).await?;
            loop {
                match stream.next().await? {
                    Some(v) => {
                        failures = 0;
                        if last.as_ref().map(|l| l.version) != Some(v.version) {
                            print(&v);
                            last = Some(v);
                        }
                    }
                    None => return Ok::<(), ClientError>(()),
                }
            }
        };
        let result = tokio::select! {
            _ = &mut stop => return Ok(ExitCode::SUCCESS),
            r = session => r,
        };
        match result {
            // A wrong key never becomes right: stop.
            Err(e @ ClientError::InvalidInput { .. }) => return Err(e.into()),
            Err(e) => {
                failures += 1;
                eprintln!(
                    "presence: chat box stream lost ({}); reconnecting",
                    e.detail()
                );
            }
            Ok(()) => failures += 1,
        }
        let delay = Duration::from_millis(250u64 << failures.min(6)).min(Duration::from_secs(15));
        tokio::select! {
            _ = &mut stop => return Ok(ExitCode::SUCCESS),
            _ = tokio::time::sleep(delay) => {}
        }
    }
}
