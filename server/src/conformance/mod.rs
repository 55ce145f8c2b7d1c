//! The backend conformance suite: the behaviour every [`Backend`] must show, written once and
//! run against each backend through [`backend_conformance_tests!`](crate::backend_conformance_tests).
//!
//! Each check drives the operations over the seam (`Ops`, as the HTTP layer calls them, and
//! the seam itself where a check needs it; no HTTP), with a fresh backend from the caller's
//! factory, and waits for events with a deadline rather than sleeping. A backend passes when
//! every check passes; the embedded backend runs them in `server/tests/conformance.rs`, a
//! cluster backend runs the same macro with its own factory.
//!
//! ```ignore
//! presence_server::backend_conformance_tests!(my_factory);
//! // where `async fn my_factory() -> presence_server::conformance::Harness`
//! ```

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use presence_protocol::{
    AgentStatus, ChatboxStatus, CreateAccountRequest, Device, Group, LoginRequest, Mode,
    NewAgentRequest, NewOwner, PatchAgentRequest, Platform, PushProvider, PushRegistration, Reason,
    Role, SetStatusRequest, Settings,
};

mod concurrency;
mod credentials;
mod idle;
mod time;

pub use concurrency::*;
pub use credentials::*;
pub use idle::*;
pub use time::*;

use crate::auth::token_hash;
use crate::backend::{AgentEvent, Backend, BackendError, Principal};
use crate::ops::Ops;

/// How long a check waits for something that should happen at once.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// A backend under test, the operations over it, and whatever must live as long as it (a
/// data dir, store servers).
pub struct Harness {
    pub backend: Arc<dyn Backend>,
    ops: Ops,
    pub keep: Box<dyn Any + Send>,
}

impl Harness {
    /// A harness over `backend`, whose push registrations `pusher` checks (the one the
    /// backend sends with).
    pub fn new(
        backend: Arc<dyn Backend>,
        pusher: Arc<crate::push::Pusher>,
        keep: Box<dyn Any + Send>,
    ) -> Harness {
        let ops = Ops::new(backend.clone(), crate::hashing::HashPool::new(2), pusher);
        Harness { backend, ops, keep }
    }

    /// The operations of the API over this backend, as the HTTP layer calls them.
    pub fn ops(&self) -> Ops {
        self.ops.clone()
    }
}

/// Lease terms short enough for expiry checks.
pub fn fast_settings() -> Settings {
    Settings {
        active_interval_ms: 200,
        active_ttl_ms: 1000,
        background_ttl_ms: 3000,
        renew_margin_ms: 1500,
    }
}

/// An account `slug` (owner `owner@<slug>.test`, password `pw-secret-1`), with `settings`.
pub async fn account(o: &Ops, slug: &str, settings: Settings) -> String {
    o.create_account(
        CreateAccountRequest {
            name: format!("{slug} Inc"),
            slug: slug.to_owned(),
            owner: NewOwner {
                name: "Owner".into(),
                email: format!("owner@{slug}.test"),
                password: "pw-secret-1".into(),
            },
        },
        settings,
    )
    .await
    .expect("account created")
    .account
    .id
}

/// Registers a webhook push for the session (to a port nobody listens on), so it may take
/// background leases.
async fn register_webhook_push(b: &Ops, p: &Principal) {
    b.set_push(
        p,
        Some(PushRegistration::new(
            PushProvider::Webhook,
            "http://127.0.0.1:9/push",
        )),
    )
    .await
    .unwrap();
}

pub fn login_req(slug: &str, email: &str, device: &str) -> LoginRequest {
    LoginRequest {
        account: slug.to_owned(),
        email: email.to_owned(),
        password: "pw-secret-1".into(),
        device: Device {
            id: device.to_owned(),
            platform: Platform::Desktop,
            name: device.to_owned(),
            app_version: "1".into(),
        },
        push: None,
    }
}

/// Logs in and returns the principal and the raw token.
pub async fn login(b: &Ops, slug: &str, email: &str, device: &str) -> (Principal, String) {
    let resp = b
        .login(login_req(slug, email, device))
        .await
        .expect("login");
    let p = b
        .authenticate(&token_hash(&resp.token))
        .await
        .expect("the new token authenticates");
    (p, resp.token)
}

pub(crate) fn op(status: AgentStatus, op_id: &str, intent_at: Option<i64>) -> SetStatusRequest {
    SetStatusRequest::new(status, op_id, intent_at)
}

/// An admin's change to `status`, untimed.
pub(crate) fn admin_req(status: AgentStatus) -> presence_protocol::AdminSetStatusRequest {
    presence_protocol::AdminSetStatusRequest {
        status,
        duration_ms: None,
        then: None,
        custom_status: None,
        note: None,
    }
}

pub(crate) fn uuid(n: u32) -> String {
    format!("0190b6a0-0000-7000-8000-{n:012}")
}

/// An agent `name` (email `<name>@<slug>.test`, password `pw-secret-1`) in `groups`.
pub(crate) async fn agent(o: &Ops, owner: &Principal, slug: &str, name: &str, groups: &[&str]) {
    o.create_agent(
        owner,
        NewAgentRequest {
            name: name.to_owned(),
            email: format!("{name}@{slug}.test"),
            password: "pw-secret-1".into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            role: Role::Agent,
        },
    )
    .await
    .expect("agent created");
}

/// Waits (within [`DEADLINE`]) for a widget stream to show an offline view.
async fn view_goes_offline(
    w: &mut crate::backend::WidgetStream,
) -> Result<(), tokio::time::error::Elapsed> {
    tokio::time::timeout(DEADLINE, async {
        loop {
            if w.views.borrow_and_update().view.status == ChatboxStatus::Offline {
                return;
            }
            w.views.changed().await.unwrap();
        }
    })
    .await
}

pub(crate) async fn widget_key(o: &Ops, owner: &Principal) -> String {
    o.admin_account(owner).await.unwrap().account.widget_key
}

pub async fn latest_intent_wins_and_ties_go_to_the_higher_op_id(h: Harness) {
    let b = &h.ops;
    let o = h.ops();
    account(&h.ops, "acme", Settings::default()).await;
    let (p, _) = login(b, "acme", "owner@acme.test", "d").await;
    let r = o
        .set_status(&p, op(AgentStatus::Online, &uuid(2), Some(1_000)))
        .await
        .unwrap();
    assert!(r.applied);
    let older = o
        .set_status(&p, op(AgentStatus::Busy, &uuid(3), Some(900)))
        .await
        .unwrap();
    assert!(!older.applied, "an older intent is superseded");
    assert_eq!(older.status.status, AgentStatus::Online);
    let tie_low = o
        .set_status(&p, op(AgentStatus::Busy, &uuid(1), Some(1_000)))
        .await
        .unwrap();
    assert!(!tie_low.applied, "a tie goes to the higher op id");
    let tie_high = o
        .set_status(&p, op(AgentStatus::Busy, &uuid(9), Some(1_000)))
        .await
        .unwrap();
    assert!(tie_high.applied);
    assert_eq!(tie_high.status.version, 2);
}

pub async fn the_same_op_id_returns_the_first_answer_without_a_new_version(h: Harness) {
    let b = &h.ops;
    let o = h.ops();
    account(&h.ops, "acme", Settings::default()).await;
    let (p, _) = login(b, "acme", "owner@acme.test", "d").await;
    let first = o
        .set_status(&p, op(AgentStatus::Busy, &uuid(5), None))
        .await
        .unwrap();
    let again = o
        .set_status(&p, op(AgentStatus::Online, &uuid(5), None))
        .await
        .unwrap();
    assert_eq!(first, again);
    assert_eq!(b.me(&p).await.unwrap().status.version, 1);
}

pub async fn wrong_credentials_and_dead_tokens_are_told_apart(h: Harness) {
    let b = &h.ops;
    let o = h.ops();
    account(&h.ops, "acme", Settings::default()).await;
    let mut bad = login_req("acme", "owner@acme.test", "d");
    bad.password = "nope".into();
    assert_eq!(
        b.login(bad).await.err(),
        Some(BackendError::InvalidCredentials)
    );
    let nobody = login_req("acme", "nobody@acme.test", "d");
    assert_eq!(
        b.login(nobody).await.err(),
        Some(BackendError::InvalidCredentials)
    );
    assert_eq!(
        b.authenticate(&token_hash("never-issued")).await.err(),
        Some(BackendError::UnknownToken)
    );
    let (p, token) = login(b, "acme", "owner@acme.test", "d").await;
    o.logout(&p).await.unwrap();
    assert_eq!(
        b.authenticate(&token_hash(&token)).await.err(),
        Some(BackendError::SessionEnded)
    );
    assert_eq!(
        b.heartbeat(&token_hash(&token), Mode::Active.into())
            .await
            .err(),
        Some(BackendError::SessionEnded)
    );
}

pub async fn logout_takes_the_view_offline_at_once(h: Harness) {
    let b = &h.ops;
    let o = h.ops();
    account(&h.ops, "acme", Settings::default()).await;
    let (p, _) = login(b, "acme", "owner@acme.test", "d").await;
    o.set_status(&p, op(AgentStatus::Online, &uuid(1), None))
        .await
        .unwrap();
    let key = widget_key(&h.ops(), &p).await;
    let mut w = b.open_widget_stream(&key).await.unwrap();
    assert_eq!(
        w.views.borrow_and_update().view.status,
        ChatboxStatus::Online
    );
    o.logout(&p).await.unwrap();
    tokio::time::timeout(DEADLINE, w.views.changed())
        .await
        .expect("a new view at once")
        .unwrap();
    let v = w.views.borrow().view.clone();
    assert_eq!(v.status, ChatboxStatus::Offline);
    assert_eq!(v.reason, Reason::NoAgentsOnline);
}

pub async fn an_ungrouped_agent_counts_for_every_group(h: Harness) {
    let b = &h.ops;
    let o = h.ops();
    account(&h.ops, "acme", Settings::default()).await;
    let (owner, _) = login(b, "acme", "owner@acme.test", "o").await;
    h.ops()
        .put_groups(
            &owner,
            vec![
                Group {
                    key: "sales".into(),
                    name: "Sales".into(),
                },
                Group {
                    key: "support".into(),
                    name: "Support".into(),
                },
            ],
        )
        .await
        .unwrap();
    // The owner is in no group: online, it makes every group online.
    o.set_status(&owner, op(AgentStatus::Online, &uuid(1), None))
        .await
        .unwrap();
    let key = widget_key(&h.ops(), &owner).await;
    let v = b.widget_view(&key).await.unwrap().view.clone();
    assert_eq!(v.status, ChatboxStatus::Online);
    assert!(v.groups.iter().all(|g| g.status == ChatboxStatus::Online));
    // Put in sales only, it no longer counts for support.
    let owner_id = owner.agent_id.to_string();
    h.ops()
        .patch_agent(
            &owner,
            &owner_id,
            PatchAgentRequest {
                groups: Some(vec!["sales".into()]),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let v = b.widget_view(&key).await.unwrap().view.clone();
    let by_key = |k: &str| v.groups.iter().find(|g| g.key == k).unwrap().status;
    assert_eq!(by_key("sales"), ChatboxStatus::Online);
    assert_eq!(by_key("support"), ChatboxStatus::Offline);
}

pub async fn busy_shows_when_nobody_online_is_available_but_someone_busy_is(h: Harness) {
    let b = &h.ops;
    let o = h.ops();
    account(&h.ops, "acme", Settings::default()).await;
    let (owner, _) = login(b, "acme", "owner@acme.test", "o").await;
    agent(&h.ops(), &owner, "acme", "ann", &[]).await;
    let (ann, _) = login(b, "acme", "ann@acme.test", "a").await;
    o.set_status(&ann, op(AgentStatus::Busy, &uuid(1), None))
        .await
        .unwrap();
    let key = widget_key(&h.ops(), &owner).await;
    let v = b.widget_view(&key).await.unwrap().view.clone();
    assert_eq!(
        (v.status, v.reason),
        (ChatboxStatus::Busy, Reason::AgentsBusy)
    );
    o.set_status(&owner, op(AgentStatus::Online, &uuid(2), None))
        .await
        .unwrap();
    let v = b.widget_view(&key).await.unwrap().view.clone();
    assert_eq!(v.status, ChatboxStatus::Online);
}

pub async fn view_versions_only_grow(h: Harness) {
    let b = &h.ops;
    let o = h.ops();
    account(&h.ops, "acme", Settings::default()).await;
    let (p, _) = login(b, "acme", "owner@acme.test", "o").await;
    let key = widget_key(&h.ops(), &p).await;
    let mut last = b.widget_view(&key).await.unwrap().view.version;
    for (i, s) in [AgentStatus::Online, AgentStatus::Busy, AgentStatus::Offline]
        .into_iter()
        .enumerate()
    {
        o.set_status(&p, op(s, &uuid(10 + i as u32), None))
            .await
            .unwrap();
        let v = b.widget_view(&key).await.unwrap().view.version;
        assert!(v > last, "version {v} after {last}");
        last = v;
    }
}

pub async fn a_background_lease_needs_a_push_registration(h: Harness) {
    let b = &h.ops;
    account(&h.ops, "acme", Settings::default()).await;
    let (p, token) = login(b, "acme", "owner@acme.test", "phone").await;
    let hb = b
        .heartbeat(&token_hash(&token), Mode::Background.into())
        .await
        .unwrap();
    assert_eq!(
        hb.ttl_ms,
        Settings::default().active_ttl_ms,
        "no push: active terms"
    );
    register_webhook_push(b, &p).await;
    let hb = b
        .heartbeat(&token_hash(&token), Mode::Background.into())
        .await
        .unwrap();
    let s = Settings::default();
    assert_eq!(hb.ttl_ms, s.background_ttl_ms);
    assert_eq!(hb.interval_ms, s.background_ttl_ms - s.renew_margin_ms);
}

/// [`crate::rules::renewed_lease_until`] as each backend applies it: a background lease
/// renewed inside its renew window runs on from its old end; renewed before it, ttl from now.
pub async fn a_background_lease_renewed_in_its_window_runs_on_from_its_old_end(h: Harness) {
    let b = &h.ops;
    let s = fast_settings();
    account(&h.ops, "acme", s).await;
    let (p, token) = login(b, "acme", "owner@acme.test", "phone").await;
    register_webhook_push(b, &p).await;
    let th = token_hash(&token);
    let first = b.heartbeat(&th, Mode::Background.into()).await.unwrap();
    assert_eq!(first.lease_until, first.server_time + s.background_ttl_ms);
    // Before the window: ttl from now.
    let early = b.heartbeat(&th, Mode::Background.into()).await.unwrap();
    assert!(early.server_time < early.lease_until - s.renew_margin_ms);
    assert_eq!(early.lease_until, early.server_time + s.background_ttl_ms);
    // The renew window opens `renew_margin_ms` before the lease ends: a timed wait for a
    // moment the server's clock decides, then the renewal the renew push asks for.
    let window = early.lease_until - s.renew_margin_ms;
    tokio::time::sleep(Duration::from_millis(
        (window - early.server_time + 50).max(0) as u64,
    ))
    .await;
    let renewed = b.heartbeat(&th, Mode::Background.into()).await.unwrap();
    assert!(renewed.server_time >= window, "inside the renew window");
    assert_eq!(
        renewed.lease_until,
        early.lease_until + s.background_ttl_ms,
        "runs on from the old end"
    );
}

pub async fn logging_in_again_on_a_device_replaces_its_session(h: Harness) {
    let b = &h.ops;
    account(&h.ops, "acme", Settings::default()).await;
    let (first, token) = login(b, "acme", "owner@acme.test", "laptop").await;
    let mut stream = b.open_device_stream(&first).await.unwrap();
    let (second, _) = login(b, "acme", "owner@acme.test", "laptop").await;
    assert_ne!(first.session_id, second.session_id);
    assert_eq!(
        b.authenticate(&token_hash(&token)).await.err(),
        Some(BackendError::SessionEnded)
    );
    let ended = tokio::time::timeout(DEADLINE, async {
        loop {
            if let Ok(AgentEvent::SessionEnded {
                session_id, reason, ..
            }) = stream.events.recv().await
                && session_id == first.session_id
            {
                return reason;
            }
        }
    })
    .await
    .expect("the old stream hears it");
    assert_eq!(ended, presence_protocol::EndReason::Replaced);
    assert_eq!(b.me(&second).await.unwrap().sessions.len(), 1);
}

pub async fn a_lapsed_lease_ends_the_session_and_the_view_follows(h: Harness) {
    let b = &h.ops;
    let o = h.ops();
    account(&h.ops, "acme", fast_settings()).await;
    let (p, token) = login(b, "acme", "owner@acme.test", "d").await;
    o.set_status(&p, op(AgentStatus::Online, &uuid(1), None))
        .await
        .unwrap();
    let key = widget_key(&h.ops(), &p).await;
    let mut w = b.open_widget_stream(&key).await.unwrap();
    view_goes_offline(&mut w)
        .await
        .expect("the lease ends within its ttl and the view goes offline");
    assert_eq!(
        b.heartbeat(&token_hash(&token), Mode::Active.into())
            .await
            .err(),
        Some(BackendError::SessionEnded)
    );
}

/// A session back in the foreground trades its long background lease for the active one,
/// and that shorter lease ends on time.
pub async fn a_session_back_in_the_foreground_ends_at_its_active_lease(h: Harness) {
    let b = &h.ops;
    let o = h.ops();
    let s = fast_settings();
    account(&h.ops, "acme", s).await;
    let (p, token) = login(b, "acme", "owner@acme.test", "phone").await;
    register_webhook_push(b, &p).await;
    o.set_status(&p, op(AgentStatus::Online, &uuid(1), None))
        .await
        .unwrap();
    let th = token_hash(&token);
    let bg = b.heartbeat(&th, Mode::Background.into()).await.unwrap();
    let fg = b.heartbeat(&th, Mode::Active.into()).await.unwrap();
    assert_eq!(fg.lease_until, fg.server_time + s.active_ttl_ms);
    assert!(fg.lease_until < bg.lease_until);
    let key = widget_key(&h.ops(), &p).await;
    let mut w = b.open_widget_stream(&key).await.unwrap();
    let started = std::time::Instant::now();
    view_goes_offline(&mut w)
        .await
        .expect("the view goes offline");
    let took = started.elapsed().as_millis() as i64;
    assert!(
        took < s.background_ttl_ms - 500,
        "ended after {took} ms: at the active lease, not the background one"
    );
}

pub async fn an_admin_status_change_wins_and_carries_no_device(h: Harness) {
    let b = &h.ops;
    let o = h.ops();
    account(&h.ops, "acme", Settings::default()).await;
    let (owner, _) = login(b, "acme", "owner@acme.test", "o").await;
    let now_ahead = crate::clock::Clock::new().now_ms() + 4_000;
    o.set_status(&owner, op(AgentStatus::Online, &uuid(1), Some(now_ahead)))
        .await
        .unwrap();
    let id = owner.agent_id.to_string();
    let s = o
        .admin_set_status(&owner, &id, admin_req(AgentStatus::Offline))
        .await
        .unwrap();
    assert_eq!(s.status, AgentStatus::Offline);
    assert_eq!(s.changed_by_device, None);
    assert_eq!(b.me(&owner).await.unwrap().status, s);
}

pub async fn tenants_never_see_each_other(h: Harness) {
    let b = &h.ops;
    let o = h.ops();
    account(&h.ops, "acme", Settings::default()).await;
    account(&h.ops, "other", Settings::default()).await;
    let (acme, _) = login(b, "acme", "owner@acme.test", "a").await;
    let (other, _) = login(b, "other", "owner@other.test", "o").await;
    let acme_id = acme.agent_id.to_string();
    assert_eq!(
        o.admin_set_status(&other, &acme_id, admin_req(AgentStatus::Online))
            .await
            .err(),
        Some(BackendError::NotFound("agent"))
    );
    assert_eq!(
        o.end_own_session(&other, &acme.session_id).await.err(),
        Some(BackendError::NotFound("session"))
    );
    // Nothing of acme's changed.
    assert_eq!(b.me(&acme).await.unwrap().status.version, 0);
    assert_eq!(b.me(&acme).await.unwrap().sessions.len(), 1);
}

/// Generates one `#[tokio::test]` per conformance check, each with a fresh backend from
/// `$factory` (an `async fn() -> Harness`).
#[macro_export]
macro_rules! backend_conformance_tests {
    ($factory:path) => {
        $crate::backend_conformance_tests!(@each $factory;
            latest_intent_wins_and_ties_go_to_the_higher_op_id,
            the_same_op_id_returns_the_first_answer_without_a_new_version,
            wrong_credentials_and_dead_tokens_are_told_apart,
            logout_takes_the_view_offline_at_once,
            an_ungrouped_agent_counts_for_every_group,
            busy_shows_when_nobody_online_is_available_but_someone_busy_is,
            view_versions_only_grow,
            a_background_lease_needs_a_push_registration,
            a_background_lease_renewed_in_its_window_runs_on_from_its_old_end,
            logging_in_again_on_a_device_replaces_its_session,
            a_lapsed_lease_ends_the_session_and_the_view_follows,
            a_session_back_in_the_foreground_ends_at_its_active_lease,
            an_admin_status_change_wins_and_carries_no_device,
            tenants_never_see_each_other,
            concurrent_demotions_never_leave_an_account_without_an_owner,
            a_group_removed_while_an_agent_is_created_never_leaves_the_agent_in_it,
            concurrent_edits_of_one_account_serialise,
            concurrent_logins_on_one_device_leave_one_live_session,
            a_slug_taken_by_concurrent_signups_goes_to_exactly_one,
            a_timed_status_ends_by_itself_with_its_then,
            a_later_change_cancels_a_timed_status,
            an_admins_timed_status_names_the_admin_and_ends_like_any_other,
            a_removed_custom_status_leaves_its_agents_with_their_base_status,
            a_custom_status_removed_while_an_agent_takes_it_never_stays,
            the_chat_box_says_when_a_busy_team_is_back,
            the_status_log_keeps_every_applied_change_newest_first_in_pages,
            an_agent_goes_idle_at_the_moment_its_reports_imply_and_activity_brings_it_back,
            an_explicit_busy_is_never_overridden_and_an_idle_report_past_due_applies_at_once,
            a_session_that_reports_nothing_keeps_the_agent_available,
            idle_settings_and_reports_out_of_bounds_name_their_field,
            changing_ones_password_ends_the_other_sessions_and_only_the_new_one_signs_in,
            an_admin_setting_a_password_ends_every_session_and_only_an_owner_sets_an_owners,
            an_agent_keeps_at_most_twenty_live_sessions_and_the_oldest_is_replaced,
        );
    };
    (@each $factory:path; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                $crate::conformance::$name($factory().await).await;
            }
        )*
    };
}
