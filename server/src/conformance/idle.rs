//! The conformance checks of automatic away and back: an online agent whose every session
//! reports no activity goes idle at the moment the reports imply, activity brings it back,
//! an explicit busy is never overridden, a session that reports nothing keeps the agent
//! available, and `/v1/me` shows each session's last report.

use presence_protocol::{
    AgentStatus, Cause, HeartbeatRequest, Mode, Settings, SettingsPatch, StatusView,
};

use super::time::status_event;
use super::{Harness, account, login, op, uuid};
use crate::auth::token_hash;
use crate::backend::{BackendError, Principal};
use crate::ops::Ops;

/// The shortest idle setting the contract allows, so checks wait little.
const IDLE_AFTER: i64 = 1_000;

/// An account "acme" with automatic away after [`IDLE_AFTER`], and its owner logged in
/// (principal, token) and online.
async fn idle_account(o: &Ops) -> (Principal, String) {
    account(o, "acme", Settings::default()).await;
    let (p, token) = login(o, "acme", "owner@acme.test", "desk").await;
    let patch = SettingsPatch {
        idle_after_ms: Some(Some(IDLE_AFTER)),
        ..SettingsPatch::default()
    };
    let s = o.put_settings(&p, patch).await.unwrap();
    assert_eq!(s.idle.idle_after_ms, Some(IDLE_AFTER));
    assert_eq!(s.idle.idle_status, AgentStatus::Busy, "the default");
    o.set_status(&p, op(AgentStatus::Online, &uuid(1), None))
        .await
        .unwrap();
    (p, token)
}

fn report(idle_ms: i64) -> HeartbeatRequest {
    HeartbeatRequest {
        mode: Mode::Active,
        idle_ms: Some(idle_ms),
    }
}

async fn status(o: &Ops, p: &Principal) -> StatusView {
    o.me(p).await.unwrap().status
}

pub async fn an_agent_goes_idle_at_the_moment_its_reports_imply_and_activity_brings_it_back(
    h: Harness,
) {
    let o = h.ops();
    let (p, token) = idle_account(&o).await;
    let mut stream = o.open_device_stream(&p).await.unwrap();
    let hb = o.heartbeat(&token_hash(&token), report(200)).await.unwrap();
    let idle_at = hb.server_time - 200 + IDLE_AFTER;
    let me = o.me(&p).await.unwrap();
    assert_eq!(me.sessions[0].idle_ms, Some(200), "/v1/me shows the report");
    let idle = status_event(&mut stream, |s| s.cause == Cause::Idle).await;
    assert_eq!(idle.status, AgentStatus::Busy);
    assert_eq!(idle.intent_at, idle_at, "at the moment the report implies");
    assert_eq!(
        (idle.changed_by_device, idle.changed_by_agent),
        (None, None)
    );
    let hb = o.heartbeat(&token_hash(&token), report(0)).await.unwrap();
    let back = status(&o, &p).await;
    assert_eq!(
        (back.status, back.cause),
        (AgentStatus::Online, Cause::Return)
    );
    assert_eq!(back.version, idle.version + 1);
    assert_eq!(
        hb.status_version, back.version,
        "the answer carries the return"
    );
}

pub async fn an_explicit_busy_is_never_overridden_and_an_idle_report_past_due_applies_at_once(
    h: Harness,
) {
    let o = h.ops();
    let (p, token) = idle_account(&o).await;
    let th = token_hash(&token);
    let online = status(&o, &p).await;
    // Idle for longer than the setting already: applied by the heartbeat itself, at the
    // moment implied or, if the agent went online after it, just then.
    let hb = o.heartbeat(&th, report(5_000)).await.unwrap();
    let idle = status(&o, &p).await;
    assert_eq!((idle.status, idle.cause), (AgentStatus::Busy, Cause::Idle));
    let implied = hb.server_time - 5_000 + IDLE_AFTER;
    assert_eq!(idle.intent_at, implied.max(online.intent_at));
    // Busy by hand (after the idle change, even within its millisecond): no report changes
    // it, in either direction.
    let busy = o
        .set_status(
            &p,
            op(AgentStatus::Busy, &uuid(2), Some(idle.intent_at + 1)),
        )
        .await
        .unwrap()
        .status;
    o.heartbeat(&th, report(0)).await.unwrap();
    o.heartbeat(&th, report(60_000)).await.unwrap();
    assert_eq!(status(&o, &p).await, busy);
}

pub async fn a_session_that_reports_nothing_keeps_the_agent_available(h: Harness) {
    let o = h.ops();
    let (p, token) = idle_account(&o).await;
    let (_phone, phone_token) = login(&o, "acme", "owner@acme.test", "phone").await;
    o.heartbeat(&token_hash(&phone_token), Mode::Background.into())
        .await
        .unwrap();
    o.heartbeat(&token_hash(&token), report(60_000))
        .await
        .unwrap();
    let s = status(&o, &p).await;
    assert_eq!((s.status, s.cause), (AgentStatus::Online, Cause::Manual));
    let me = o.me(&p).await.unwrap();
    let mut reports: Vec<_> = me.sessions.iter().map(|s| s.idle_ms).collect();
    reports.sort();
    assert_eq!(reports, vec![None, Some(60_000)]);
}

pub async fn idle_settings_and_reports_out_of_bounds_name_their_field(h: Harness) {
    let o = h.ops();
    let (p, token) = idle_account(&o).await;
    let cases = [
        (
            SettingsPatch {
                idle_after_ms: Some(Some(999)),
                ..SettingsPatch::default()
            },
            "idle_after_ms",
        ),
        (
            SettingsPatch {
                idle_status: Some(AgentStatus::Online),
                ..SettingsPatch::default()
            },
            "idle_status",
        ),
    ];
    for (patch, want) in cases {
        match o.put_settings(&p, patch).await {
            Err(BackendError::InvalidField { field, .. }) => assert_eq!(field, want),
            other => panic!("{want}: {other:?}"),
        }
    }
    match o.heartbeat(&token_hash(&token), report(-1)).await {
        Err(BackendError::InvalidField { field, .. }) => assert_eq!(field, "idle_ms"),
        other => panic!("{other:?}"),
    }
    let off = SettingsPatch {
        idle_after_ms: Some(None),
        ..SettingsPatch::default()
    };
    assert_eq!(
        o.put_settings(&p, off).await.unwrap().idle.idle_after_ms,
        None
    );
    o.heartbeat(&token_hash(&token), report(60_000))
        .await
        .unwrap();
    assert_eq!(
        status(&o, &p).await.status,
        AgentStatus::Online,
        "off: never idle"
    );
}
