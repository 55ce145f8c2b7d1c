//! Opening and closing times publish a new chat box view by themselves, with no request: the
//! sweeper holds a timer at the view's `next_change_at`. Runs on tokio's paused clock, so the
//! minutes until the flip pass at once.

use std::sync::Arc;

use chrono::{TimeZone, Timelike, Utc};
use presence_protocol::{
    AgentStatus, ChatboxStatus, CreateAccountRequest, Device, LoginRequest, NewOwner, OpeningHours,
    Platform, Reason, SetStatusRequest, Settings, WeekDays,
};
use presence_server::embedded::Embedded;
use presence_server::metrics::Metrics;
use presence_server::push::Pusher;
use presence_server::store::Store;

fn hhmm(ms: i64) -> String {
    let t = Utc.timestamp_millis_opt(ms).unwrap();
    format!("{:02}:{:02}", t.hour(), t.minute())
}

#[tokio::test(start_paused = true)]
async fn closing_time_publishes_offline_without_a_request() {
    let dir = tempfile::tempdir().unwrap();
    let metrics = Arc::new(Metrics::default());
    let (_stop, stop_rx) = tokio::sync::watch::channel(false);
    let pusher = Arc::new(Pusher::new(vec![], metrics.push.clone()));
    let embedded = Embedded::open(
        Store::open_dir(dir.path()).unwrap(),
        pusher.clone(),
        presence_server::Retention::default(),
        metrics,
        stop_rx,
    )
    .unwrap();
    let backend: Arc<dyn presence_server::backend::Backend> = Arc::new(embedded.clone());
    let ops = presence_server::ops::Ops::new(
        backend.clone(),
        presence_server::hashing::HashPool::new(1),
        pusher,
    );
    let created = ops
        .create_account(
            CreateAccountRequest {
                name: "Acme".into(),
                slug: "acme".into(),
                owner: NewOwner {
                    name: "O".into(),
                    email: "o@acme.test".into(),
                    password: "pw-secret-1".into(),
                },
            },
            Settings {
                active_ttl_ms: 3_600_000,
                ..Settings::default()
            },
        )
        .await
        .unwrap();
    let login = ops
        .login(LoginRequest {
            account: "acme".into(),
            email: "o@acme.test".into(),
            password: "pw-secret-1".into(),
            device: Device {
                id: "d".into(),
                platform: Platform::Cli,
                name: "d".into(),
                app_version: "1".into(),
            },
            push: None,
        })
        .await
        .unwrap();
    let p = ops
        .authenticate(&presence_server::auth::token_hash(&login.token))
        .await
        .unwrap();
    ops.set_status(
        &p,
        SetStatusRequest::new(AgentStatus::Online, uuid_v7(), None),
    )
    .await
    .unwrap();

    // Open every day from a minute ago until the first whole minute at least 60 s ahead (a
    // range that may cross midnight, which is fine).
    let now = embedded.clock().now_ms();
    let close_at = (now + 60_000).div_euclid(60_000) * 60_000 + 60_000;
    let range = vec![(hhmm(now - 60_000), hhmm(close_at))];
    let days = WeekDays {
        mon: range.clone(),
        tue: range.clone(),
        wed: range.clone(),
        thu: range.clone(),
        fri: range.clone(),
        sat: range.clone(),
        sun: range,
    };
    ops.put_opening_hours(
        &p,
        OpeningHours {
            enabled: true,
            timezone: "UTC".into(),
            days,
            exceptions: vec![],
        },
    )
    .await
    .unwrap();
    let mut stream = ops
        .open_widget_stream(&created.account.widget_key)
        .await
        .unwrap();
    let open = stream.views.borrow_and_update().view.clone();
    assert_eq!(open.status, ChatboxStatus::Online);
    assert_eq!(open.next_change_at, Some(close_at));

    // Nothing but the clock moves from here on.
    stream.views.changed().await.unwrap();
    let closed = stream.views.borrow_and_update().view.clone();
    assert_eq!(closed.status, ChatboxStatus::Offline);
    assert_eq!(closed.reason, Reason::OutsideOpeningHours);
    assert!(closed.version > open.version);
    let flipped_at = embedded.clock().now_ms();
    assert!(flipped_at >= close_at, "not before closing time");
    assert!(
        flipped_at < close_at + 250,
        "within the sweeper's precision"
    );
}

fn uuid_v7() -> String {
    // A fixed, valid UUID; one op is enough here.
    "01900000-0000-7000-8000-0000000000aa".to_owned()
}
