//! `presence-bench serve-presence ...`: our server in a process of its own, started exactly
//! as `server/src/main.rs` starts it: the same `presence_server::process` functions for
//! logging, the runtime, the `listening on http://ADDR` line and the graceful stop.
//!
//! Running the library from this binary rather than the `presence-server` binary means the
//! bench needs no nested `cargo build`: `cargo run -p presence-bench --release` compiles the
//! server code it measures, in the same profile.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use presence_protocol::Settings;
use presence_server::Config;

fn flag<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
}

fn num(args: &[String], name: &str, default: i64) -> Result<i64, String> {
    match flag(args, name) {
        Some(v) => v.parse().map_err(|_| format!("{name}: not a number: {v}")),
        None => Ok(default),
    }
}

fn config(args: &[String]) -> Result<Config, String> {
    let d = Settings::default();
    let base = Config::for_tests(Path::new(""));
    Ok(Config {
        listen: flag(args, "--listen")
            .unwrap_or("127.0.0.1:0")
            .parse::<SocketAddr>()
            .map_err(|e| format!("--listen: {e}"))?,
        data_dir: PathBuf::from(flag(args, "--data-dir").ok_or("--data-dir is required")?),
        admin_token: flag(args, "--admin-token").map(str::to_owned),
        demo: false,
        defaults: Settings {
            active_interval_ms: num(args, "--active-interval-ms", d.active_interval_ms)?,
            active_ttl_ms: num(args, "--active-ttl-ms", d.active_ttl_ms)?,
            background_ttl_ms: num(args, "--background-ttl-ms", d.background_ttl_ms)?,
            renew_margin_ms: num(args, "--renew-margin-ms", d.renew_margin_ms)?,
        },
        // Webhook endpoints of the `webhooks` step are loopback receivers.
        push: presence_server::push::PushConfig {
            webhook_allow: vec!["127.0.0.1".to_owned()],
            ..Default::default()
        },
        limits: presence_server::Limits {
            max_sessions_per_agent: num(args, "--max-sessions-per-agent", 20)? as usize,
            idle_timeout: std::time::Duration::from_millis(num(
                args,
                "--idle-timeout-ms",
                base.limits.idle_timeout.as_millis() as i64,
            )? as u64),
            max_connections: num(
                args,
                "--max-connections",
                base.limits.max_connections as i64,
            )? as usize,
            ..base.limits
        },
        cluster: match (flag(args, "--postgres-url"), flag(args, "--redis-url")) {
            (Some(pg), Some(redis)) => Some(presence_server::cluster::ClusterConfig {
                postgres_url: pg.to_owned(),
                redis_urls: vec![redis.to_owned()],
                redis_ca_file: None,
            }),
            _ => None,
        },
        ..base
    })
}

/// `--seed-history AGENTS,DAYS,CHANGES`: account `reports` (owner `owner@reports.test`,
/// the bench password) with AGENTS agents in all, and DAYS days of history ending now,
/// CHANGES rows per agent per day, imported before the server says it listens.
async fn seed_history(server: &presence_server::Server, spec: &str) -> Result<(), String> {
    let n: Vec<i64> = spec
        .split(',')
        .map(|v| v.parse().map_err(|_| format!("--seed-history: {spec}")))
        .collect::<Result<_, _>>()?;
    let [agents, days, changes] = n[..] else {
        return Err(format!("--seed-history AGENTS,DAYS,CHANGES: {spec}"));
    };
    let ops = server.ops();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let e = |err: presence_server::backend::BackendError| format!("seeding: {err}");
    let created = ops
        .create_account(
            presence_protocol::CreateAccountRequest {
                name: "Reports".into(),
                slug: "reports".into(),
                owner: presence_protocol::NewOwner {
                    name: "Owner".into(),
                    email: "owner@reports.test".into(),
                    password: crate::api::PASSWORD.into(),
                },
            },
            Settings::default(),
        )
        .await
        .map_err(e)?;
    let owner = presence_server::backend::Principal {
        session_id: "".into(),
        agent_id: created.owner.id.as_str().into(),
        account_id: created.account.id.as_str().into(),
        role: presence_protocol::Role::Owner,
    };
    let mut ids = vec![created.owner.id.clone()];
    for i in 1..agents {
        let a = ops
            .create_agent(
                &owner,
                presence_protocol::NewAgentRequest {
                    name: format!("Agent {i:03}"),
                    email: format!("agent{i}@reports.test"),
                    password: crate::api::PASSWORD.into(),
                    groups: Vec::new(),
                    role: presence_protocol::Role::Agent,
                },
            )
            .await
            .map_err(e)?;
        ids.push(a.id);
    }
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let plan = presence_server::history::seed::Plan {
        from: now - days * 86_400_000,
        to: now,
        tz: chrono_tz::UTC,
        changes_per_day: changes as u32,
        weekdays_only: false,
        seed: 90,
    };
    let rows = presence_server::history::seed::synthetic(&refs, &plan);
    eprintln!("seeding {} availability rows", rows.len());
    ops.backend()
        .import_history(&created.account.id, rows)
        .await
        .map_err(e)?;
    eprintln!("seeded {} {}", plan.from, plan.to);
    Ok(())
}

pub fn serve(args: &[String]) -> ExitCode {
    let config = match config(args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("serve-presence: {e}");
            return ExitCode::from(2);
        }
    };
    let seed = args.to_vec();
    presence_server::process::init_logging();
    let rt = match presence_server::process::runtime() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("serve-presence: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async move {
        let server = match presence_server::start(config).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("serve-presence: {e}");
                return ExitCode::FAILURE;
            }
        };
        if let Some(spec) = flag(&seed, "--seed-history")
            && let Err(e) = seed_history(&server, spec).await
        {
            eprintln!("serve-presence: {e}");
            return ExitCode::FAILURE;
        }
        presence_server::process::serve_until_signal(server).await;
        ExitCode::SUCCESS
    })
}
