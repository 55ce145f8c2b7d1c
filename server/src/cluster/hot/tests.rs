//! The hot state's encodings and key layout.

use super::*;
use presence_protocol::Mode;

#[test]
fn leases_survive_their_encoding() {
    let l = Lease {
        agent: "agt_1".into(),
        mode: Mode::Background,
        until: 1_764_650_000_123,
        push: true,
    };
    assert_eq!(Lease::decode(&l.encode()), Some(l));
}

#[test]
fn partitions_spread_and_stay_put() {
    let ps: std::collections::HashSet<u32> =
        (0..1000).map(|i| partition(&format!("acc_{i}"))).collect();
    assert_eq!(ps.len(), PARTITIONS as usize);
    assert_eq!(partition("acc_x"), partition("acc_x"));
    assert!(
        Keys::of("acc_x")
            .meta
            .contains(&format!("{{p{:02}}}", partition("acc_x")))
    );
}
