//! Conformance checks for credentials and session caps: a password changed by its agent or
//! by an admin, and the live sessions an agent may keep.

use presence_protocol::{
    ChangePasswordRequest, EndReason, LoginRequest, NewAgentRequest, Role, SetPasswordRequest,
    Settings,
};

use super::{DEADLINE, Harness, account, login, login_req};
use crate::auth::token_hash;
use crate::backend::{AgentEvent, BackendError, DeviceStream};
use crate::ops::Ops;
use crate::ops::sessions::MAX_LIVE_SESSIONS;

/// Waits on `stream` for the end of `session_id` and returns its reason.
async fn ended(stream: &mut DeviceStream, session_id: &str) -> EndReason {
    tokio::time::timeout(DEADLINE, async {
        loop {
            match stream.events.recv().await {
                Ok(AgentEvent::SessionEnded {
                    session_id: s,
                    reason,
                }) if &*s == session_id => return reason,
                Ok(_) => {}
                Err(e) => panic!("the stream closed before the session ended: {e}"),
            }
        }
    })
    .await
    .expect("the stream hears that its session ended")
}

fn with_password(mut req: LoginRequest, password: &str) -> LoginRequest {
    req.password = password.to_owned();
    req
}

async fn signs_in(o: &Ops, password: &str) -> Result<(), BackendError> {
    let req = login_req("acme", "owner@acme.test", "another-laptop");
    o.login(with_password(req, password)).await.map(drop)
}

pub async fn changing_ones_password_ends_the_other_sessions_and_only_the_new_one_signs_in(
    h: Harness,
) {
    let o = h.ops();
    account(&o, "acme", Settings::default()).await;
    let (here, here_token) = login(&o, "acme", "owner@acme.test", "laptop").await;
    let (phone, phone_token) = login(&o, "acme", "owner@acme.test", "phone").await;
    let mut phone_stream = o.open_device_stream(&phone).await.unwrap();
    let change = |current: &str, new: &str| ChangePasswordRequest {
        current: current.into(),
        new: new.into(),
    };

    let wrong = o
        .change_own_password(&here, change("not-the-password", "a-brand-new-one"))
        .await;
    assert_eq!(wrong.err(), Some(BackendError::InvalidCredentials));
    let short = o
        .change_own_password(&here, change("pw-secret-1", "short"))
        .await;
    assert!(
        matches!(&short, Err(BackendError::InvalidField { field, .. }) if field == "new"),
        "{short:?}"
    );
    assert!(
        o.authenticate(&token_hash(&phone_token)).await.is_ok(),
        "refused changes end nothing"
    );

    o.change_own_password(&here, change("pw-secret-1", "a-brand-new-one"))
        .await
        .expect("the change");
    assert_eq!(
        ended(&mut phone_stream, &phone.session_id).await,
        EndReason::CredentialsChanged
    );
    assert_eq!(
        o.authenticate(&token_hash(&phone_token)).await.err(),
        Some(BackendError::SessionEnded)
    );
    assert!(
        o.authenticate(&token_hash(&here_token)).await.is_ok(),
        "the session it was changed from goes on"
    );
    assert_eq!(
        signs_in(&o, "pw-secret-1").await.err(),
        Some(BackendError::InvalidCredentials)
    );
    signs_in(&o, "a-brand-new-one")
        .await
        .expect("the new password signs in");
}

pub async fn an_admin_setting_a_password_ends_every_session_and_only_an_owner_sets_an_owners(
    h: Harness,
) {
    let o = h.ops();
    account(&o, "acme", Settings::default()).await;
    let (owner, owner_token) = login(&o, "acme", "owner@acme.test", "owner-laptop").await;
    for (name, role) in [("ann", Role::Agent), ("adam", Role::Admin)] {
        o.create_agent(
            &owner,
            NewAgentRequest {
                name: name.into(),
                email: format!("{name}@acme.test"),
                password: "pw-secret-1".into(),
                groups: vec![],
                role,
            },
        )
        .await
        .unwrap();
    }
    let (ann, ann_token) = login(&o, "acme", "ann@acme.test", "ann-laptop").await;
    let mut ann_stream = o.open_device_stream(&ann).await.unwrap();
    let (adam, _) = login(&o, "acme", "adam@acme.test", "adam-laptop").await;
    let set = |password: &str| SetPasswordRequest {
        password: password.into(),
    };

    let short = o.set_agent_password(&adam, &ann.agent_id, set("123")).await;
    assert!(
        matches!(&short, Err(BackendError::InvalidField { field, .. }) if field == "password"),
        "{short:?}"
    );
    let owners = o
        .set_agent_password(&adam, &owner.agent_id, set("taken-over-1"))
        .await;
    assert!(
        matches!(owners, Err(BackendError::Forbidden(_))),
        "{owners:?}"
    );
    assert!(signs_in(&o, "pw-secret-1").await.is_ok(), "nothing changed");
    let by_agent = o
        .set_agent_password(&ann, &owner.agent_id, set("taken-over-1"))
        .await;
    assert!(
        matches!(by_agent, Err(BackendError::Forbidden(_))),
        "{by_agent:?}"
    );

    o.set_agent_password(&adam, &ann.agent_id, set("reset-by-adam"))
        .await
        .expect("an admin sets an agent's password");
    assert_eq!(
        ended(&mut ann_stream, &ann.session_id).await,
        EndReason::CredentialsChanged
    );
    assert_eq!(
        o.authenticate(&token_hash(&ann_token)).await.err(),
        Some(BackendError::SessionEnded)
    );
    let req = login_req("acme", "ann@acme.test", "ann-laptop");
    o.login(with_password(req, "reset-by-adam"))
        .await
        .expect("the new password signs in");

    o.set_agent_password(&owner, &owner.agent_id, set("owner-reset-1"))
        .await
        .expect("an owner sets an owner's password");
    assert_eq!(
        o.authenticate(&token_hash(&owner_token)).await.err(),
        Some(BackendError::SessionEnded),
        "an admin's reset ends the caller's own session too"
    );
}

pub async fn an_agent_keeps_at_most_twenty_live_sessions_and_the_oldest_is_replaced(h: Harness) {
    let o = h.ops();
    account(&o, "acme", Settings::default()).await;
    let mut sessions = Vec::new();
    for i in 0..MAX_LIVE_SESSIONS {
        sessions.push(login(&o, "acme", "owner@acme.test", &format!("device-{i:02}")).await);
    }
    let (oldest, oldest_token) = &sessions[0];
    let mut oldest_stream = o.open_device_stream(oldest).await.unwrap();
    let (newest, _) = login(&o, "acme", "owner@acme.test", "one-more").await;
    assert_eq!(
        ended(&mut oldest_stream, &oldest.session_id).await,
        EndReason::Replaced
    );
    assert_eq!(
        o.authenticate(&token_hash(oldest_token)).await.err(),
        Some(BackendError::SessionEnded)
    );
    let me = o.me(&newest).await.unwrap();
    assert_eq!(me.sessions.len(), MAX_LIVE_SESSIONS);
    let second = &sessions[1].0;
    assert!(
        me.sessions
            .iter()
            .any(|s| s.session_id == *second.session_id),
        "only the oldest went"
    );
}
