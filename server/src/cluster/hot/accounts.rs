//! An account's settings and agents in the hot state: seeding from PostgreSQL, committed
//! statuses, profiles, config and the opening-hours schedule.
//!
//! Guarantees: seeding never overwrites an account Redis already holds; a status is applied
//! only if its version is newer than the one Redis has, so a late or repeated apply (the
//! reconciler's) never moves a status back.

use redis::Value;

use presence_protocol::StatusView;

use super::codec::int;
use super::{Event, Hot, HotResult, Keys, Lease, Profile, redis_err};
use crate::backend::BackendResult;

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

    /// Applies a committed status if its version is newer than Redis's and publishes it;
    /// true if it applied.
    pub async fn set_status(
        &self,
        account_id: &str,
        agent: &str,
        status: &StatusView,
        op: &str,
    ) -> HotResult<bool> {
        let k = Keys::of(account_id);
        let sj = serde_json::to_string(status).unwrap_or_default();
        let ev = serde_json::to_string(&Event::Status {
            agent: agent.to_owned(),
            status: status.clone(),
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
}
