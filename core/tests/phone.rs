//! What a phone pays per hour of each lifecycle state at default settings (the same scenario
//! `cargo xtask bench` reports, here with its rules pinned): no fsync for incoming events, in
//! the background with push no wakeup but the renew pushes, without network none at all.

use presence_test_support::phone;

#[test]
fn a_phone_pays_only_for_renew_pushes_in_the_background_and_nothing_without_network() {
    let c = phone::measure(3, 200).expect("scenario ran");
    println!("{:#}", c.to_json());

    assert_eq!(c.incoming_events, 200);
    assert_eq!(c.incoming_fsyncs.total(), 0, "{:?}", c.incoming_fsyncs);
    for (state, s) in [
        ("active", &c.active),
        ("background with push", &c.background_push),
        ("background without push", &c.background_no_push),
        ("no network", &c.no_network),
    ] {
        assert_eq!(s.fsyncs.total(), 0, "{state}: {:?}", s.fsyncs);
    }

    // With the device's clock offset steady, heartbeats and pings write nothing at all.
    assert_eq!(c.active.engine.cache_commits, 0, "{:?}", c.active);
    assert_eq!(c.active.engine.durable_commits, 0, "{:?}", c.active);

    // Active: one heartbeat per 20 s and the one open stream, nothing else.
    assert!(
        (179.0..=181.0).contains(&c.active.requests_per_h()),
        "{:?}",
        c.active
    );

    // Background with push: the engine's own timer never fires; the only wakeups are the
    // renew pushes (one per 30 min background ttl: a lease renewed in its renew window runs
    // on from its old end), each answered by one heartbeat. At most two an hour.
    assert_eq!(
        c.background_push.engine.timer_wakeups, 0,
        "{:?}",
        c.background_push
    );
    assert!(c.background_push.pushes >= 6, "{:?}", c.background_push);
    assert!(
        c.background_push.wakeups_per_h() <= 2.0,
        "{:?}",
        c.background_push
    );
    assert_eq!(
        c.background_push.engine.requests, c.background_push.pushes,
        "{:?}",
        c.background_push
    );

    // Without a push registration the lease stays short: active heartbeats go on.
    assert!(c.background_no_push.timer_wakeups_per_h() >= 179.0);

    // No network: nothing at all.
    assert_eq!(c.no_network.engine.timer_wakeups, 0, "{:?}", c.no_network);
    assert_eq!(c.no_network.engine.requests, 0, "{:?}", c.no_network);
}
