//! The conformance checks of time and custom statuses: a timed status ends by itself with its
//! `then`, a later change cancels it, an admin's timed status says who set it; a custom
//! status lends its default duration and, removed, leaves its agents with their base status,
//! even when removed while an agent takes it.

use presence_protocol::{AgentStatus, Cause, CustomStatus, SetStatusRequest, Settings, StatusView};

use super::{DEADLINE, Harness, account, admin_req, agent, login, op, uuid, widget_key};
use crate::backend::{AgentEvent, BackendError, DeviceStream};

/// `status` for `duration_ms`, then `then` (the default when `None`).
fn timed(status: AgentStatus, n: u32, d: i64, then: Option<AgentStatus>) -> SetStatusRequest {
    SetStatusRequest {
        duration_ms: Some(d),
        then,
        ..op(status, &uuid(n), None)
    }
}

/// The next status event on `stream` that `pred` accepts.
pub(super) async fn status_event(
    stream: &mut DeviceStream,
    pred: impl Fn(&StatusView) -> bool,
) -> StatusView {
    let wait = async {
        loop {
            match stream.events.recv().await {
                Ok(AgentEvent::Status(f)) if pred(&f.status) => return f.status.clone(),
                Ok(_) => {}
                Err(e) => panic!("the device stream ended: {e}"),
            }
        }
    };
    tokio::time::timeout(DEADLINE, wait)
        .await
        .expect("the status event within the deadline")
}

pub async fn a_timed_status_ends_by_itself_with_its_then(h: Harness) {
    let o = h.ops();
    account(&o, "acme", Settings::default()).await;
    let (p, _) = login(&o, "acme", "owner@acme.test", "d").await;
    o.set_status(&p, op(AgentStatus::Online, &uuid(1), None))
        .await
        .unwrap();
    let mut stream = o.open_device_stream(&p).await.unwrap();
    let mut req = timed(AgentStatus::Busy, 2, 1_000, None);
    req.note = Some("dentist".into());
    let set = o.set_status(&p, req).await.unwrap();
    assert!(set.applied);
    let until = set.status.until.expect("timed");
    assert_eq!(until, set.status.intent_at + 1_000);
    assert_eq!(set.status.then, Some(AgentStatus::Online));
    assert_eq!(set.status.note.as_deref(), Some("dentist"));
    let ended = status_event(&mut stream, |s| s.cause == Cause::Timer).await;
    assert_eq!(ended.status, AgentStatus::Online);
    assert_eq!(ended.intent_at, until);
    assert_eq!(ended.version, set.status.version + 1);
    assert_eq!(
        (ended.until, ended.then, ended.note.as_deref()),
        (None, None, None)
    );
    assert_eq!(o.me(&p).await.unwrap().status, ended);
}

pub async fn a_later_change_cancels_a_timed_status(h: Harness) {
    let o = h.ops();
    account(&o, "acme", Settings::default()).await;
    let (owner, _) = login(&o, "acme", "owner@acme.test", "o").await;
    agent(&o, &owner, "acme", "ann", &[]).await;
    let (ann, _) = login(&o, "acme", "ann@acme.test", "a").await;
    o.set_status(&owner, timed(AgentStatus::Busy, 1, 1_000, None))
        .await
        .unwrap();
    let later = o
        .set_status(&owner, op(AgentStatus::Offline, &uuid(2), None))
        .await
        .unwrap();
    assert!(later.applied);
    assert_eq!(later.status.until, None);
    // Ann's timer ends well after the cancelled one would have: once hers has fired, the
    // owner's would have too.
    let mut ann_stream = o.open_device_stream(&ann).await.unwrap();
    o.set_status(
        &ann,
        timed(AgentStatus::Busy, 3, 3_000, Some(AgentStatus::Online)),
    )
    .await
    .unwrap();
    status_event(&mut ann_stream, |s| s.cause == Cause::Timer).await;
    assert_eq!(o.me(&owner).await.unwrap().status, later.status);
}

pub async fn an_admins_timed_status_names_the_admin_and_ends_like_any_other(h: Harness) {
    let o = h.ops();
    account(&o, "acme", Settings::default()).await;
    let (owner, _) = login(&o, "acme", "owner@acme.test", "o").await;
    agent(&o, &owner, "acme", "ann", &[]).await;
    let (ann, _) = login(&o, "acme", "ann@acme.test", "a").await;
    let mut stream = o.open_device_stream(&ann).await.unwrap();
    let mut req = admin_req(AgentStatus::Offline);
    req.duration_ms = Some(1_000);
    req.then = Some(AgentStatus::Busy);
    let set = o
        .admin_set_status(&owner, &ann.agent_id, req)
        .await
        .unwrap();
    assert_eq!(set.cause, Cause::Admin);
    assert_eq!(set.changed_by_agent.as_deref(), Some(&*owner.agent_id));
    assert_eq!(set.changed_by_device, None);
    let ended = status_event(&mut stream, |s| s.cause == Cause::Timer).await;
    assert_eq!(ended.status, AgentStatus::Busy);
    assert_eq!(ended.changed_by_agent, None);
}

fn custom(id: &str, base: AgentStatus, default_duration_ms: Option<i64>) -> CustomStatus {
    CustomStatus {
        id: id.into(),
        label: id.to_uppercase(),
        emoji: None,
        base,
        default_duration_ms,
    }
}

fn with_custom(status: AgentStatus, n: u32, id: &str) -> SetStatusRequest {
    SetStatusRequest {
        custom_status: Some(id.into()),
        ..op(status, &uuid(n), None)
    }
}

pub async fn a_removed_custom_status_leaves_its_agents_with_their_base_status(h: Harness) {
    let o = h.ops();
    account(&o, "acme", Settings::default()).await;
    let (p, _) = login(&o, "acme", "owner@acme.test", "d").await;
    let lunch = custom("lunch", AgentStatus::Busy, Some(3_600_000));
    let call = custom("call", AgentStatus::Busy, None);
    let stored = o
        .put_custom_statuses(&p, vec![lunch.clone(), call.clone()])
        .await
        .unwrap();
    assert_eq!(stored, vec![lunch.clone(), call.clone()]);
    let set = o
        .set_status(&p, with_custom(AgentStatus::Busy, 1, "lunch"))
        .await
        .unwrap()
        .status;
    assert_eq!(set.custom_status.as_deref(), Some("lunch"));
    assert_eq!(
        set.until,
        Some(set.intent_at + 3_600_000),
        "the default duration"
    );
    assert_eq!(o.me(&p).await.unwrap().custom_statuses, stored);
    assert!(matches!(
        o.set_status(&p, with_custom(AgentStatus::Online, 2, "call")).await,
        Err(BackendError::InvalidField { field, .. }) if field == "custom_status"
    ));
    let mut stream = o.open_device_stream(&p).await.unwrap();
    o.put_custom_statuses(&p, vec![call.clone()]).await.unwrap();
    let reset = status_event(&mut stream, |s| s.custom_status.is_none()).await;
    assert_eq!(reset.status, AgentStatus::Busy);
    assert_eq!(reset.version, set.version + 1);
    assert_eq!((reset.until, reset.then), (set.until, set.then));
    let me = o.me(&p).await.unwrap();
    assert_eq!(me.status, reset);
    assert_eq!(me.custom_statuses, vec![call]);
    assert!(matches!(
        o.set_status(&p, with_custom(AgentStatus::Busy, 3, "lunch")).await,
        Err(BackendError::InvalidField { field, .. }) if field == "custom_status"
    ));
    let admin = o.admin_account(&p).await.unwrap();
    assert_eq!(admin.custom_statuses.len(), 1);
}

pub async fn a_custom_status_removed_while_an_agent_takes_it_never_stays(h: Harness) {
    let o = h.ops();
    account(&o, "acme", Settings::default()).await;
    let (p, _) = login(&o, "acme", "owner@acme.test", "d").await;
    for round in 0..6 {
        let lunch = custom("lunch", AgentStatus::Busy, None);
        o.put_custom_statuses(&p, vec![lunch]).await.unwrap();
        let (o1, p1) = (o.clone(), p.clone());
        let take = tokio::spawn(async move {
            o1.set_status(&p1, with_custom(AgentStatus::Busy, 100 + round, "lunch"))
                .await
        });
        let (o2, p2) = (o.clone(), p.clone());
        let remove = tokio::spawn(async move { o2.put_custom_statuses(&p2, Vec::new()).await });
        let (took, removed) = tokio::join!(take, remove);
        removed.unwrap().unwrap();
        match took.unwrap() {
            Ok(_) | Err(BackendError::InvalidField { .. }) => {}
            Err(e) => panic!("round {round}: {e:?}"),
        }
        let me = o.me(&p).await.unwrap();
        assert_eq!(
            me.status.custom_status, None,
            "round {round}: {:?}",
            me.status
        );
    }
}

pub async fn the_chat_box_says_when_a_busy_team_is_back(h: Harness) {
    let o = h.ops();
    account(&o, "acme", Settings::default()).await;
    let (p, _) = login(&o, "acme", "owner@acme.test", "d").await;
    let set = o
        .set_status(
            &p,
            timed(AgentStatus::Busy, 1, 60_000, Some(AgentStatus::Online)),
        )
        .await
        .unwrap()
        .status;
    let key = widget_key(&o, &p).await;
    let view = o.widget_view(&key).await.unwrap().view.clone();
    assert_eq!(view.status, presence_protocol::ChatboxStatus::Busy);
    assert_eq!(view.back_at, set.until);
    // Busy with no end: nobody is known to be back.
    o.set_status(&p, op(AgentStatus::Busy, &uuid(2), None))
        .await
        .unwrap();
    let view = o.widget_view(&key).await.unwrap().view.clone();
    assert_eq!(
        (view.status, view.back_at),
        (presence_protocol::ChatboxStatus::Busy, None)
    );
}

fn log_params(limit: Option<i64>, after: Option<&str>) -> crate::ops::LogParams {
    crate::ops::LogParams {
        limit,
        after: after.map(|a| a.parse().unwrap()),
        ..Default::default()
    }
}

pub async fn the_status_log_keeps_every_applied_change_newest_first_in_pages(h: Harness) {
    let o = h.ops();
    account(&o, "acme", Settings::default()).await;
    let (owner, _) = login(&o, "acme", "owner@acme.test", "o").await;
    agent(&o, &owner, "acme", "ann", &[]).await;
    let (ann, _) = login(&o, "acme", "ann@acme.test", "a").await;
    let mut stream = o.open_device_stream(&ann).await.unwrap();
    let online = o
        .set_status(&ann, op(AgentStatus::Online, &uuid(1), None))
        .await
        .unwrap()
        .status;
    let mut req = timed(AgentStatus::Busy, 2, 1_000, None);
    req.note = Some("call".into());
    let busy = o.set_status(&ann, req).await.unwrap().status;
    // A losing op is not a change: not in the log.
    let lost = o
        .set_status(
            &ann,
            op(AgentStatus::Offline, &uuid(3), Some(online.intent_at - 1)),
        )
        .await
        .unwrap();
    assert!(!lost.applied);
    let ended = status_event(&mut stream, |s| s.cause == Cause::Timer).await;
    let by_admin = o
        .admin_set_status(&owner, &ann.agent_id, admin_req(AgentStatus::Offline))
        .await
        .unwrap();

    let first = o
        .status_log(&ann, &ann.agent_id, log_params(Some(3), None))
        .await
        .unwrap();
    let statuses: Vec<_> = first.entries.iter().map(|e| e.status.clone()).collect();
    assert_eq!(
        statuses,
        vec![by_admin.clone(), ended.clone(), busy.clone()]
    );
    let times: Vec<_> = first.entries.iter().map(|e| e.applied_at).collect();
    assert!(
        times.windows(2).all(|w| w[0] >= w[1]),
        "newest first: {times:?}"
    );
    let next = first.next.as_deref().expect("a next page");
    let second = o
        .status_log(&ann, &ann.agent_id, log_params(Some(3), Some(next)))
        .await
        .unwrap();
    assert_eq!(second.entries.len(), 1);
    assert_eq!(second.entries[0].status, online);
    assert_eq!(second.next, None);

    // An admin reads any agent's log of the account; `to` bounds it by time (exclusive).
    let to = first.entries[0].applied_at;
    let bounded = crate::ops::LogParams {
        to: Some(to),
        ..Default::default()
    };
    let page = o.status_log(&owner, &ann.agent_id, bounded).await.unwrap();
    let all = first.entries.iter().chain(&second.entries);
    let want: Vec<_> = all.filter(|e| e.applied_at < to).cloned().collect();
    assert_eq!(page.entries, want);
    assert!(page.entries.iter().all(|e| e.status.cause != Cause::Admin));

    for limit in [0, 501] {
        assert!(matches!(
            o.status_log(&ann, &ann.agent_id, log_params(Some(limit), None)).await,
            Err(BackendError::InvalidField { field, .. }) if field == "limit"
        ));
    }
    account(&o, "other", Settings::default()).await;
    let (stranger, _) = login(&o, "other", "owner@other.test", "s").await;
    assert!(matches!(
        o.status_log(&stranger, &ann.agent_id, log_params(None, None))
            .await,
        Err(BackendError::NotFound(_))
    ));
}
