//! Each wire name is written once, by the case rule both serde and strum apply to the variant
//! name; this pins that the two agree for every variant of every plain enum, so `as_str`,
//! `parse` and the JSON never drift apart.

use presence_protocol::{
    AgentStatus, ChatboxStatus, EndReason, ErrorCode, Mode, Platform, PushProvider, Reason, Role,
};
use serde::{Serialize, de::DeserializeOwned};
use strum::IntoEnumIterator;

fn agree<T>(name: &str)
where
    T: IntoEnumIterator + Serialize + DeserializeOwned + Copy + PartialEq + std::fmt::Debug,
    &'static str: From<T>,
    T: std::str::FromStr,
{
    let mut n = 0;
    for v in T::iter() {
        let wire: &'static str = v.into();
        assert_eq!(
            serde_json::to_value(v).unwrap(),
            serde_json::Value::String(wire.to_owned()),
            "{name}::{v:?}"
        );
        assert_eq!(
            serde_json::from_value::<T>(serde_json::Value::String(wire.to_owned())).unwrap(),
            v
        );
        assert!(wire.parse::<T>().is_ok(), "{name}: {wire}");
        n += 1;
    }
    assert!(n >= 2, "{name} has variants");
    assert!("Not A Name".parse::<T>().is_err());
}

#[test]
fn serde_and_strum_give_every_variant_the_same_wire_name() {
    agree::<AgentStatus>("AgentStatus");
    agree::<ChatboxStatus>("ChatboxStatus");
    agree::<Reason>("Reason");
    agree::<Platform>("Platform");
    agree::<Mode>("Mode");
    agree::<Role>("Role");
    agree::<PushProvider>("PushProvider");
    agree::<EndReason>("EndReason");
    agree::<ErrorCode>("ErrorCode");
}

#[test]
fn as_str_and_parse_are_the_wire_names() {
    assert_eq!(AgentStatus::Busy.as_str(), "busy");
    assert_eq!(AgentStatus::parse("offline"), Some(AgentStatus::Offline));
    assert_eq!(AgentStatus::parse("Offline"), None);
    assert_eq!(PushProvider::Unifiedpush.as_str(), "unifiedpush");
    assert_eq!(ErrorCode::PayloadTooLarge.as_str(), "payload_too_large");
    assert_eq!(EndReason::parse("replaced"), Some(EndReason::Replaced));
    assert_eq!(Role::parse("admin"), Some(Role::Admin));
}
