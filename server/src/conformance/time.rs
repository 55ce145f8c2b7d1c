//! The conformance checks of time: a timed status ends by itself with its `then`, a later
//! change cancels it, and an admin's timed status says who set it.

use presence_protocol::{AgentStatus, Cause, SetStatusRequest, Settings, StatusView};

use super::{DEADLINE, Harness, account, admin_req, agent, login, op, uuid};
use crate::backend::{AgentEvent, DeviceStream};

/// `status` for `duration_ms`, then `then` (the default when `None`).
fn timed(status: AgentStatus, n: u32, d: i64, then: Option<AgentStatus>) -> SetStatusRequest {
    SetStatusRequest {
        duration_ms: Some(d),
        then,
        ..op(status, &uuid(n), None)
    }
}

/// The next status event on `stream` that `pred` accepts.
async fn status_event(stream: &mut DeviceStream, pred: impl Fn(&StatusView) -> bool) -> StatusView {
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
