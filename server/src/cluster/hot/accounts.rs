//! An account's settings and agents in the hot state: seeding from PostgreSQL, committed
//! statuses, profiles, config and the opening-hours schedule.
//!
//! Guarantees: seeding never overwrites an account Redis already holds; a status is applied
//! only if its version is newer than the one Redis has, so a late or repeated apply (the
//! reconciler's) never moves a status back.

use redis::Value;

use presence_protocol::StatusView;

use super::codec::{int, items, text};
use super::{Event, Hot, HotResult, Keys, Lease, Profile, redis_err};
use crate::backend::BackendResult;
use crate::ops::idle::Report;

impl Hot {
    /// Writes an account's config, agents and live leases, unless it is seeded already.
    /// `version` is where view versions go on from: the reservation, so they never repeat.
    #[allow(clippy::too_many_arguments)]
    pub async fn seed(
        &self,
        account_id: &str,
        cfg: &str,
        version: i64,
        agents: &[(String, String, String, i64, String)],
        leases: &[(String, Lease)],
    ) -> BackendResult<()> {
        let k = Keys::of(account_id);
        let mut inv = self.scripts.seed.prepare_invoke();
        inv.key(&k.meta)
            .key(&k.agents)
            .key(&k.leases)
            .key(&k.deadlines)
            .arg(cfg)
            .arg(version)
            .arg(uuid::Uuid::new_v4().simple().to_string())
            .arg(account_id)
            .arg(agents.len());
        for (id, profile, status, version, op) in agents {
            inv.arg(id).arg(profile).arg(status).arg(*version).arg(op);
        }
        for (sid, l) in leases {
            inv.arg(sid).arg(l.encode()).arg(l.until);
        }
        let mut c = self.conn.clone();
        self.timed(inv.invoke_async::<Value>(&mut c))
            .await
            .map_err(redis_err)?;
        Ok(())
    }

    /// Applies a committed status if its version is newer than Redis's and publishes it
    /// (with `committed_us`, when it was committed, if it is a fresh change); true if it
    /// applied.
    pub async fn set_status(
        &self,
        account_id: &str,
        agent: &str,
        status: &StatusView,
        op: &str,
        committed_us: Option<i64>,
    ) -> HotResult<bool> {
        let k = Keys::of(account_id);
        let sj = serde_json::to_string(status).unwrap_or_default();
        let ev = serde_json::to_string(&Event::Status {
            agent: agent.to_owned(),
            status: status.clone(),
            at_us: committed_us,
        })
        .unwrap_or_default();
        let v = self
            .run(
                self.scripts
                    .set_status
                    .key(&k.meta)
                    .key(&k.agents)
                    .key(&k.deadlines)
                    .arg(agent)
                    .arg(status.version)
                    .arg(sj)
                    .arg(op)
                    .arg(ev)
                    .arg(&k.channel)
                    .arg(account_id)
                    .arg(status.until.map(|u| u.to_string()).unwrap_or_default()),
            )
            .await?;
        Ok(int(&v) == 1)
    }

    /// Writes an agent's profile (and, for a new agent, its first status).
    pub async fn put_profile(
        &self,
        account_id: &str,
        agent: &str,
        profile: &Profile,
        first_status: Option<&StatusView>,
    ) -> HotResult<()> {
        let k = Keys::of(account_id);
        let pj = serde_json::to_string(profile).unwrap_or_default();
        let mut inv = self.scripts.put_profile.key(&k.meta);
        inv.key(&k.agents).arg(agent).arg(pj);
        if let Some(s) = first_status {
            inv.arg(serde_json::to_string(s).unwrap_or_default())
                .arg(s.version)
                .arg("");
        }
        self.run(&mut inv).await?;
        Ok(())
    }

    pub async fn remove_agent(&self, account_id: &str, agent: &str) -> HotResult<()> {
        let k = Keys::of(account_id);
        self.run(
            self.scripts
                .remove_agent
                .key(&k.meta)
                .key(&k.agents)
                .arg(agent),
        )
        .await?;
        Ok(())
    }

    pub async fn put_cfg(&self, account_id: &str, cfg: &str) -> HotResult<()> {
        let k = Keys::of(account_id);
        self.run(
            self.scripts
                .put_cfg
                .key(&k.meta)
                .key(&k.deadlines)
                .arg(cfg)
                .arg(account_id),
        )
        .await?;
        Ok(())
    }

    /// Schedules the account's next opening-hours boundary.
    pub async fn schedule_flip(&self, account_id: &str, at: i64) -> BackendResult<()> {
        let k = Keys::of(account_id);
        let mut c = self.conn.clone();
        let mut cmd = redis::cmd("ZADD");
        cmd.arg(&k.deadlines).arg(at).arg(format!("f {account_id}"));
        self.timed(cmd.query_async::<()>(&mut c))
            .await
            .map_err(redis_err)
    }

    /// The account's stored config JSON, if seeded.
    pub async fn cfg(&self, account_id: &str) -> BackendResult<Option<String>> {
        let k = Keys::of(account_id);
        let mut c = self.conn.clone();
        let mut cmd = redis::cmd("HGET");
        cmd.arg(&k.meta).arg("cfg");
        self.timed(cmd.query_async(&mut c)).await.map_err(redis_err)
    }

    /// The activity reports of an agent's live leases (`None`: that session reports none).
    pub async fn activity(
        &self,
        account_id: &str,
        agent_id: &str,
    ) -> HotResult<Vec<Option<Report>>> {
        let k = Keys::of(account_id);
        let v = self
            .run(
                self.scripts
                    .activity
                    .key(&k.meta)
                    .key(&k.leases)
                    .key(&k.activity)
                    .arg(agent_id),
            )
            .await?;
        Ok(items(&v)
            .iter()
            .map(|r| {
                let r = text(r);
                let (at, idle_ms) = r.split_once('|')?;
                Some(Report {
                    at: at.parse().ok()?,
                    idle_ms: idle_ms.parse().ok()?,
                })
            })
            .collect())
    }

    /// The last `idle_ms` each session of an account reported (sessions that report none are
    /// absent).
    pub async fn idle_reports(
        &self,
        account_id: &str,
    ) -> BackendResult<std::collections::HashMap<String, i64>> {
        let k = Keys::of(account_id);
        let mut c = self.conn.clone();
        let mut cmd = redis::cmd("HGETALL");
        cmd.arg(&k.activity);
        let all: std::collections::HashMap<String, String> = self
            .timed(cmd.query_async(&mut c))
            .await
            .map_err(redis_err)?;
        Ok(all
            .into_iter()
            .filter_map(|(sid, v)| Some((sid, v.split_once('|')?.1.parse().ok()?)))
            .collect())
    }

    /// Arms an agent's idle check at `at` in the partition's deadline index (one entry per
    /// agent: arming again moves it), or removes it.
    pub async fn schedule_idle_check(
        &self,
        account_id: &str,
        agent_id: &str,
        at: Option<i64>,
    ) -> BackendResult<()> {
        let k = Keys::of(account_id);
        let member = format!("i {account_id} {agent_id}");
        let mut c = self.conn.clone();
        let mut cmd = match at {
            Some(at) => {
                let mut cmd = redis::cmd("ZADD");
                cmd.arg(&k.deadlines).arg(at).arg(member);
                cmd
            }
            None => {
                let mut cmd = redis::cmd("ZREM");
                cmd.arg(&k.deadlines).arg(member);
                cmd
            }
        };
        let cmd = &mut cmd;
        self.timed(cmd.query_async::<()>(&mut c))
            .await
            .map_err(redis_err)
    }
}
