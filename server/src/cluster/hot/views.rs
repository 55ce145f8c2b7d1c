//! An account's chat box view in the hot state: the one-script read of all the view depends
//! on, and the conditional write of the view computed from it.
//!
//! Guarantees: [`Hot::put_view`] stores and publishes a view only if the account's `state`
//! is still the one the view was computed from, so views are published in one order across
//! nodes and a version is never served for two views.

use presence_protocol::{ChatboxView, StatusView};

use super::codec::{int, items, pairs};
use super::{Event, Hot, HotResult, Keys, Lease, Profile, redis_err};
use crate::backend::BackendResult;

/// Everything about an account that the rules need, read in one script.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub now: i64,
    pub cfg: Option<String>,
    pub state: i64,
    pub ver: i64,
    pub view: Option<String>,
    pub view_of: i64,
    pub reserved: i64,
    /// agent -> (profile, status)
    pub agents: Vec<(String, Profile, StatusView)>,
    pub leases: Vec<(String, Lease)>,
    /// session -> open device streams
    pub conn: Vec<(String, i64)>,
}

impl Hot {
    pub async fn snapshot(&self, account_id: &str) -> HotResult<Snapshot> {
        let k = Keys::of(account_id);
        let v = self
            .run(
                self.scripts
                    .snapshot
                    .key(&k.meta)
                    .key(&k.agents)
                    .key(&k.leases)
                    .key(&k.conn),
            )
            .await?;
        let a = items(&v);
        let mut s = Snapshot {
            now: self.seen(a.first().map_or(0, int)),
            ..Snapshot::default()
        };
        if let Some(meta) = a.get(1) {
            for (f, v) in pairs(meta) {
                match f.as_str() {
                    "cfg" => s.cfg = Some(v),
                    "state" => s.state = v.parse().unwrap_or(0),
                    "ver" => s.ver = v.parse().unwrap_or(0),
                    "view" => s.view = Some(v),
                    "view_of" => s.view_of = v.parse().unwrap_or(0),
                    "res" => s.reserved = v.parse().unwrap_or(0),
                    _ => {}
                }
            }
        }
        if let Some(g) = a.get(2) {
            let mut profiles = Vec::new();
            let mut statuses = std::collections::HashMap::new();
            for (f, v) in pairs(g) {
                if let Some(id) = f.strip_prefix("p:") {
                    if let Ok(p) = serde_json::from_str::<Profile>(&v) {
                        profiles.push((id.to_owned(), p));
                    }
                } else if let Some(id) = f.strip_prefix("s:")
                    && let Ok(st) = serde_json::from_str::<StatusView>(&v)
                {
                    statuses.insert(id.to_owned(), st);
                }
            }
            s.agents = profiles
                .into_iter()
                .filter_map(|(id, p)| {
                    let st = statuses.remove(&id)?;
                    Some((id, p, st))
                })
                .collect();
        }
        if let Some(l) = a.get(3) {
            s.leases = pairs(l)
                .filter_map(|(sid, v)| Some((sid, Lease::decode(&v)?)))
                .collect();
        }
        if let Some(c) = a.get(4) {
            s.conn = pairs(c)
                .map(|(sid, n)| (sid, n.parse().unwrap_or(0)))
                .collect();
        }
        Ok(s)
    }

    /// Stores and publishes a view computed from `state`, unless the account changed since
    /// (`Ok(false)`: compute again). `None` marks `state` reflected by the current view.
    pub async fn put_view(
        &self,
        account_id: &str,
        state: i64,
        view: Option<&ChatboxView>,
        reserved: i64,
    ) -> HotResult<bool> {
        let k = Keys::of(account_id);
        let (vj, ev, ver) = match view {
            Some(v) => (
                serde_json::to_string(v).unwrap_or_default(),
                serde_json::to_string(&Event::View { view: v.clone() }).unwrap_or_default(),
                v.version,
            ),
            None => (String::new(), String::new(), 0),
        };
        let v = self
            .run(
                self.scripts
                    .put_view
                    .key(&k.meta)
                    .arg(state)
                    .arg(ver)
                    .arg(vj)
                    .arg(ev)
                    .arg(&k.channel)
                    .arg(reserved),
            )
            .await?;
        Ok(int(&v) != 0)
    }

    /// The account's stored view, if any.
    pub async fn view(&self, account_id: &str) -> BackendResult<Option<ChatboxView>> {
        let k = Keys::of(account_id);
        let mut c = self.conn.clone();
        let mut cmd = redis::cmd("HGET");
        cmd.arg(&k.meta).arg("view");
        let v: Option<String> = self
            .timed(cmd.query_async(&mut c))
            .await
            .map_err(redis_err)?;
        Ok(v.and_then(|v| serde_json::from_str(&v).ok()))
    }
}
