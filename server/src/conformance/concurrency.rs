//! The conformance checks of things done at once: edits of one account serialise, and a rule
//! that spans rows (the last owner, an agent's groups, one live session per device, one
//! account per slug) holds however the requests interleave, on every backend.

use presence_protocol::{
    CreateAccountRequest, Group, NewAgentRequest, NewOwner, PatchAgentRequest, Role, Settings,
};

use super::{Harness, account, login, login_req};
use crate::auth::token_hash;
use crate::backend::{BackendError, Principal};
use crate::ops::Ops;

async fn owner(o: &Ops, by: &Principal, slug: &str, name: &str) -> String {
    o.create_agent(
        by,
        NewAgentRequest {
            name: name.to_owned(),
            email: format!("{name}@{slug}.test"),
            password: "pw-secret-1".into(),
            groups: Vec::new(),
            role: Role::Owner,
        },
    )
    .await
    .expect("owner created")
    .id
}

/// The owners of `p`'s account as stored (read from the backend: `p` may no longer be one).
async fn owners(h: &Harness, p: &Principal) -> usize {
    let slice = h
        .backend
        .account_slice(crate::ops::AccountKey::Id(&p.account_id))
        .await
        .unwrap();
    slice
        .agents
        .iter()
        .filter(|a| a.role == Role::Owner)
        .count()
}

pub async fn concurrent_demotions_never_leave_an_account_without_an_owner(h: Harness) {
    let b = &h.ops;
    let o = h.ops();
    for round in 0..6 {
        let slug = format!("acme{round}");
        account(&h.ops, &slug, Settings::default()).await;
        let (first, _) = login(b, &slug, &format!("owner@{slug}.test"), "o").await;
        let second = owner(&o, &first, &slug, "second").await;
        assert_eq!(owners(&h, &first).await, 2);
        let demote = |id: String| {
            let (o, p) = (o.clone(), first.clone());
            tokio::spawn(async move {
                let req = PatchAgentRequest {
                    role: Some(Role::Agent),
                    ..Default::default()
                };
                o.patch_agent(&p, &id, req).await.map(drop)
            })
        };
        // Two demotions at once, or a demotion and a removal at once: one of them must lose
        // (as the last owner's, or, once the caller demoted itself, as no owner's).
        let other = if round % 2 == 0 {
            demote(second)
        } else {
            let (o, p) = (o.clone(), first.clone());
            tokio::spawn(async move { o.delete_agent(&p, &second).await })
        };
        let (x, y) = tokio::join!(demote(first.agent_id.to_string()), other);
        let (x, y) = (x.unwrap(), y.unwrap());
        let refused = [&x, &y]
            .iter()
            .filter(|r| {
                matches!(
                    r,
                    Err(BackendError::Conflict(_) | BackendError::Forbidden(_))
                )
            })
            .count();
        assert_eq!(refused, 1, "round {round}: exactly one loses: {x:?} {y:?}");
        assert_eq!(owners(&h, &first).await, 1, "round {round}");
    }
}

pub async fn a_group_removed_while_an_agent_is_created_never_leaves_the_agent_in_it(h: Harness) {
    let b = &h.ops;
    let o = h.ops();
    account(&h.ops, "acme", Settings::default()).await;
    let (p, _) = login(b, "acme", "owner@acme.test", "o").await;
    let sales = || Group {
        key: "sales".into(),
        name: "Sales".into(),
    };
    for round in 0..4 {
        o.put_groups(&p, vec![sales()]).await.unwrap();
        let (o1, p1) = (o.clone(), p.clone());
        // The new agent's password is hashed while the group goes: its plan runs after.
        let create = tokio::spawn(async move {
            o1.create_agent(
                &p1,
                NewAgentRequest {
                    name: format!("Ann {round}"),
                    email: format!("ann{round}@acme.test"),
                    password: "pw-secret-1".into(),
                    groups: vec!["sales".into()],
                    role: Role::Agent,
                },
            )
            .await
        });
        let (o2, p2) = (o.clone(), p.clone());
        let remove = tokio::spawn(async move { o2.put_groups(&p2, Vec::new()).await });
        let (created, removed) = tokio::join!(create, remove);
        removed.unwrap().unwrap();
        match created.unwrap() {
            Ok(_) | Err(BackendError::InvalidField { .. }) => {}
            Err(e) => panic!("round {round}: {e:?}"),
        }
        let acc = o.admin_account(&p).await.unwrap();
        assert!(acc.groups.is_empty());
        for a in &acc.agents {
            assert!(
                a.groups.is_empty(),
                "round {round}: {} kept {:?}",
                a.email,
                a.groups
            );
        }
    }
}

pub async fn concurrent_edits_of_one_account_serialise(h: Harness) {
    let b = &h.ops;
    let o = h.ops();
    account(&h.ops, "acme", Settings::default()).await;
    let (p, _) = login(b, "acme", "owner@acme.test", "o").await;
    // Each patch names one field: applied one after the other, none is lost.
    let patches: Vec<presence_protocol::SettingsPatch> = vec![
        serde_json::from_value(serde_json::json!({"active_ttl_ms": 70_000})).unwrap(),
        serde_json::from_value(serde_json::json!({"busy_message": "Back soon"})).unwrap(),
        serde_json::from_value(serde_json::json!({"offline_message": "Closed"})).unwrap(),
        serde_json::from_value(serde_json::json!({"background_ttl_ms": 1_900_000})).unwrap(),
    ];
    let tasks: Vec<_> = patches
        .into_iter()
        .map(|patch| {
            let (o, p) = (o.clone(), p.clone());
            tokio::spawn(async move { o.put_settings(&p, patch).await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let s = o.admin_account(&p).await.unwrap().settings;
    assert_eq!(s.timings.active_ttl_ms, 70_000);
    assert_eq!(s.timings.background_ttl_ms, 1_900_000);
    assert_eq!(s.messages.busy_message.as_deref(), Some("Back soon"));
    assert_eq!(s.messages.offline_message.as_deref(), Some("Closed"));
}

pub async fn concurrent_logins_on_one_device_leave_one_live_session(h: Harness) {
    let o = h.ops();
    account(&o, "acme", Settings::default()).await;
    for round in 0..4 {
        let device = format!("laptop{round}");
        let tasks: Vec<_> = (0..4)
            .map(|_| {
                let (o, req) = (o.clone(), login_req("acme", "owner@acme.test", &device));
                tokio::spawn(async move { o.login(req).await })
            })
            .collect();
        let mut tokens = Vec::new();
        for t in tasks {
            tokens.push(t.await.unwrap().expect("login").token);
        }
        let mut live = Vec::new();
        for token in &tokens {
            if let Ok(p) = o.authenticate(&token_hash(token)).await {
                live.push(p);
            }
        }
        assert_eq!(live.len(), 1, "round {round}: one token stays live");
        let me = o.me(&live[0]).await.unwrap();
        let on_device = me.sessions.iter().filter(|s| s.device.id == device).count();
        assert_eq!(on_device, 1, "round {round}: one session on the device");
    }
}

pub async fn a_slug_taken_by_concurrent_signups_goes_to_exactly_one(h: Harness) {
    let o = h.ops();
    for round in 0..4 {
        let slug = format!("race{round}");
        let tasks: Vec<_> = (0..3)
            .map(|i| {
                let o = o.clone();
                let req = CreateAccountRequest {
                    name: format!("Race {i}"),
                    slug: slug.clone(),
                    owner: NewOwner {
                        name: "Owner".into(),
                        email: format!("owner{i}@{slug}.test"),
                        password: "pw-secret-1".into(),
                    },
                };
                tokio::spawn(async move { o.create_account(req, Settings::default()).await })
            })
            .collect();
        let mut won = Vec::new();
        for t in tasks {
            match t.await.unwrap() {
                Ok(created) => won.push(created.owner.email),
                Err(BackendError::Conflict(_)) => {}
                Err(e) => panic!("round {round}: {e:?}"),
            }
        }
        assert_eq!(won.len(), 1, "round {round}: {won:?}");
        // The winner's owner signs in; the account is the winner's.
        login(&o, &slug, &won[0], "d").await;
    }
}
