//! The cost of the durable commit on the status path, measured on the server's own store.
//!
//! `Store::commit_writes` of one `Write::Status` is the transaction `PUT /v1/me/status` commits (WAL,
//! `synchronous = NORMAL`) before it answers. Timed here on a file on the same disk as the
//! server's data dir, on tmpfs, and on an in-memory database: the difference between the
//! first and the last is what keeping presence only in memory, as the peers do, would save.

use std::path::Path;
use std::time::Instant;

use presence_protocol::{AgentStatus, OpeningHours, Role, StatusView};
use presence_server::store::{AccountRow, AgentRow, StatusRecord, Store, Write};
use serde_json::{Value, json};

use crate::Ctx;
use crate::api::e;
use crate::proc::Res;
use crate::stats::Samples;

/// Bytes of the write-ahead log files in `dir` (none for an in-memory store).
fn wal_bytes(dir: Option<&Path>) -> u64 {
    let Some(dir) = dir else { return 0 };
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|f| f.file_name().to_string_lossy().ends_with("-wal"))
        .filter_map(|f| f.metadata().ok())
        .map(|m| m.len())
        .sum()
}

/// SQLite's WAL frame: one page (4,096 bytes, the default this store keeps) and its
/// 24-byte header.
const WAL_FRAME_BYTES: f64 = 4096.0 + 24.0;

/// Times `n` status commits (after a tenth as many to warm up); with `dir`, also the log
/// frames each commit wrote (no checkpoint runs here, so the log only grows).
fn time_commits(store: &Store, n: usize, dir: Option<&Path>) -> Res<(Samples, Option<f64>)> {
    let account = AccountRow {
        id: "acc_bench".into(),
        slug: "bench".into(),
        name: "bench".into(),
        widget_key: "wk_bench".into(),
        settings: Default::default(),
        opening_hours: OpeningHours::default(),
        groups: Vec::new(),
        view_version: 0,
        custom_statuses: Vec::new(),
        identity: Default::default(),
    };
    let agent = AgentRow {
        id: "agt_bench".into(),
        account_id: account.id.clone(),
        name: "Bench".into(),
        email: "bench@bench.test".into(),
        password_hash: String::new(),
        role: Role::Owner,
        groups: Vec::new(),
        status: StatusView::manual(AgentStatus::Offline, 0, 0, None),
        status_op_id: String::new(),
        sub: None,
    };
    store
        .commit(&Write::Account {
            account: Box::new(account),
            owner: Box::new(agent.clone()),
            now: 0,
        })
        .map_err(e)?;
    let mut s = Samples::default();
    let warm = n / 10;
    let wal_before = wal_bytes(dir);
    for i in 0..warm + n {
        let status = StatusView::manual(
            if i % 2 == 0 {
                AgentStatus::Online
            } else {
                AgentStatus::Busy
            },
            i as i64 + 1,
            1_700_000_000_000 + i as i64,
            Some("device-a".into()),
        );
        let op_id = format!("{:08x}-0000-4000-8000-{:012x}", i >> 16, i);
        let resp = json!({"applied": true, "status": status}).to_string();
        let t = Instant::now();
        store
            .status_op(&agent.id, &op_id, 0)
            .map_err(|err| format!("status_op: {err}"))?;
        let op = Write::Status(StatusRecord {
            agent_id: agent.id.clone(),
            op_id,
            applied: Some(status),
            response_json: resp,
            now: 0,
        });
        for answer in store.commit_writes(&[&op]) {
            answer.map_err(|err| format!("commit_writes: {err}"))?;
        }
        if i >= warm {
            // Microseconds, stored in the ms-based samples as us.
            s.push_ms(t.elapsed().as_secs_f64() * 1e6);
        }
    }
    let frames = dir.map(|_| {
        let grew = wal_bytes(dir).saturating_sub(wal_before) as f64;
        (grew / WAL_FRAME_BYTES / (warm + n) as f64 * 100.0).round() / 100.0
    });
    Ok((s, frames))
}

fn on_dir(dir: &Path, n: usize) -> Res<(Samples, Option<f64>)> {
    let store = Store::open_dir(dir).map_err(e)?;
    time_commits(&store, n, Some(dir))
}

/// Commit costs in microseconds, keyed disk / tmpfs / memory.
pub fn store_commit_costs(ctx: &Ctx, n: usize) -> Res<Value> {
    let disk_dir = ctx.work.join("durability-store");
    let _ = std::fs::remove_dir_all(&disk_dir);
    let (disk, frames) = on_dir(&disk_dir, n)?;
    let tmpfs = match tempfile::Builder::new()
        .prefix("presence-bench-")
        .tempdir_in("/dev/shm")
    {
        Ok(d) => Some(on_dir(d.path(), n)?.0),
        Err(_) => None,
    };
    let mem = Store::open(Path::new(":memory:")).map_err(e)?;
    let (memory, _) = time_commits(&mem, n, None)?;
    Ok(json!({
        "what": "Store::status_op + Store::commit_writes, as PUT /v1/me/status runs them",
        "unit": "us",
        "disk": disk.summary(),
        "tmpfs": tmpfs.map(|s| s.summary()),
        "memory": memory.summary(),
        "wal_frames_per_commit": frames,
    }))
}
