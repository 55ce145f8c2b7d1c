//! The cluster's heartbeat script renews leases inside Redis (it must read and write a
//! lease atomically, see `presence_server::rules::RenewalCase`). This pins it to the Rust
//! rule: for every case of the shared table, on a real Redis, the script's new lease end is
//! exactly what `rules::renewed_lease_until` gives for the same lease at the script's time.

use std::time::{SystemTime, UNIX_EPOCH};

use presence_protocol::{Mode, Settings};
use presence_server::clock::Clock;
use presence_server::cluster::hot::{Beat, Hot, Lease};
use presence_server::metrics::Metrics;
use presence_server::rules;
use presence_test_support::stores::Redis;

fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_millis() as i64
}

#[tokio::test]
async fn the_heartbeat_script_renews_every_lease_as_the_rule_says() {
    let redis = Redis::start();
    let metrics = Metrics::default();
    let Ok(hot) = Hot::connect(&[redis.url()], None, metrics.store.clone(), Clock::new()).await
    else {
        panic!("Redis connects");
    };
    let settings = Settings::default();
    let cases = rules::renewal_cases(&settings);
    assert!(cases.len() >= 8, "the table covers the rule");
    for (i, c) in cases.into_iter().enumerate() {
        let (account, session) = (format!("acc_{i}"), format!("ses_{i}"));
        let lease = Lease {
            agent: "agt_1".into(),
            mode: if c.was_background {
                Mode::Background
            } else {
                Mode::Active
            },
            // Redis's clock is this machine's: the table keeps a second of slack.
            until: wall_ms() + c.ahead_ms,
            push: c.has_push,
        };
        hot.seed(&account, "{}", 1, &[], &[(session.clone(), lease.clone())])
            .await
            .expect("seeded");
        let Ok(beat) = hot
            .heartbeat(&account, &session, c.mode, None, &settings)
            .await
        else {
            panic!("{}: the script failed", c.name);
        };
        let Beat::Renewed { until, now, .. } = beat else {
            panic!("{}: the lease was not renewed", c.name);
        };
        let rule = rules::renewed_lease_until(
            &settings,
            c.was_background,
            c.mode,
            c.has_push,
            lease.until,
            now,
        );
        assert_eq!(until, rule, "{}: script and rule differ", c.name);
        let ttl = if c.background_ttl {
            settings.background_ttl_ms
        } else {
            settings.active_ttl_ms
        };
        let base = if c.from_old_end { lease.until } else { now };
        assert_eq!(until, base + ttl, "{}: not as the table says", c.name);
    }
}
