//! A session's lease in the hot state: start, heartbeat, end, its open device streams, its
//! push flag, and the read that authenticates a request.
//!
//! Guarantees: each call is one script, atomic for its account; the times they report are
//! Redis `TIME`, shown to the node's clock before they are returned. A
//! heartbeat never revives a lease whose end has passed: that one is left to the sweeper
//! ([`Beat::Lapsed`]), which reports it to exactly one node.

use presence_protocol::Mode;

use super::codec::{int, items, text};
use super::{Event, Hot, HotResult, Keys, Lease, Profile};

/// A heartbeat's outcome.
pub enum Beat {
    Renewed {
        until: i64,
        now: i64,
        status_version: i64,
        mode_changed: bool,
        push: bool,
    },
    /// No lease: the session ended.
    Gone,
    /// The lease's end has passed; the sweeper ends it.
    Lapsed,
}

impl Hot {
    pub async fn start_session(&self, account_id: &str, sid: &str, l: &Lease) -> HotResult<i64> {
        let k = Keys::of(account_id);
        let v = self
            .run(
                self.scripts
                    .start_session
                    .key(&k.meta)
                    .key(&k.leases)
                    .key(&k.deadlines)
                    .arg(sid)
                    .arg(l.encode())
                    .arg(l.until)
                    .arg(account_id),
            )
            .await?;
        Ok(self.seen(int(&v)))
    }

    pub async fn heartbeat(
        &self,
        account_id: &str,
        sid: &str,
        mode: Mode,
        idle_ms: Option<i64>,
        settings: &presence_protocol::Settings,
    ) -> HotResult<Beat> {
        let k = Keys::of(account_id);
        let v = self
            .run(
                self.scripts
                    .heartbeat
                    .key(&k.meta)
                    .key(&k.leases)
                    .key(&k.deadlines)
                    .key(&k.agents)
                    .key(&k.activity)
                    .arg(sid)
                    .arg(if mode == Mode::Background { "b" } else { "a" })
                    .arg(settings.active_ttl_ms)
                    .arg(settings.background_ttl_ms)
                    .arg(settings.renew_margin_ms)
                    .arg(account_id)
                    .arg(idle_ms.map(|ms| ms.to_string()).unwrap_or_default()),
            )
            .await?;
        let a = items(&v);
        Ok(match a.first().map(int) {
            Some(-1) => Beat::Gone,
            Some(-2) => Beat::Lapsed,
            _ => Beat::Renewed {
                until: a.first().map_or(0, int),
                now: self.seen(a.get(1).map_or(0, int)),
                status_version: a.get(2).map_or(0, int),
                mode_changed: a.get(3).map_or(0, int) == 1,
                push: a.get(4).map_or(0, int) == 1,
            },
        })
    }

    /// Removes a lease and publishes `event`; false if there was none.
    pub async fn end_session(&self, account_id: &str, sid: &str, event: &Event) -> HotResult<bool> {
        let k = Keys::of(account_id);
        let ev = serde_json::to_string(event).unwrap_or_default();
        let v = self
            .run(
                self.scripts
                    .end_session
                    .key(&k.meta)
                    .key(&k.leases)
                    .key(&k.deadlines)
                    .key(&k.conn)
                    .key(&k.activity)
                    .arg(sid)
                    .arg(account_id)
                    .arg(ev)
                    .arg(&k.channel),
            )
            .await?;
        Ok(int(&v) == 1)
    }

    /// Counts a device stream of `sid` opening (+1) or closing (-1).
    pub async fn conn(&self, account_id: &str, sid: &str, delta: i64) -> HotResult<i64> {
        let k = Keys::of(account_id);
        let v = self
            .run(
                self.scripts
                    .conn
                    .key(&k.meta)
                    .key(&k.conn)
                    .key(&k.leases)
                    .arg(sid)
                    .arg(delta),
            )
            .await?;
        Ok(int(&v))
    }

    /// Records whether a session's lease can be renewed by push.
    pub async fn lease_push(&self, account_id: &str, sid: &str, push: bool) -> HotResult<()> {
        let k = Keys::of(account_id);
        self.run(
            self.scripts
                .lease_push
                .key(&k.meta)
                .key(&k.leases)
                .key(&k.deadlines)
                .arg(sid)
                .arg(if push { "1" } else { "0" })
                .arg(account_id),
        )
        .await?;
        Ok(())
    }

    /// The time, a session's lease and its agent's profile.
    pub async fn auth(
        &self,
        account_id: &str,
        sid: &str,
        agent: &str,
    ) -> HotResult<(i64, Option<Lease>, Option<Profile>)> {
        let k = Keys::of(account_id);
        let v = self
            .run(
                self.scripts
                    .auth
                    .key(&k.meta)
                    .key(&k.leases)
                    .key(&k.agents)
                    .arg(sid)
                    .arg(agent),
            )
            .await?;
        let a = items(&v);
        let now = self.seen(a.first().map_or(0, int));
        let lease = a.get(1).and_then(|l| Lease::decode(&text(l)));
        let profile = a
            .get(2)
            .and_then(|p| serde_json::from_str::<Profile>(&text(p)).ok());
        Ok((now, lease, profile))
    }
}
