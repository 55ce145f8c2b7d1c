//! Outbound requests to targets users chose: UnifiedPush endpoints and push webhooks now,
//! the customer's webhooks and JWKS URLs later (PROTOCOL.md, third part, "Outbound"). Every
//! caller uses these rules; none has its own.
//!
//! - [`target`]: a target is `https` on port 443 at a public address ([`address`]), unless
//!   its host is on `--push-webhook-allow`; checked on the URL and on every address a name
//!   resolves to.
//! - [`client`]: every outbound HTTP client (operator-configured services too) takes no
//!   proxy from the environment and reads at most 64 KiB of an answer.
//! - [`slots`]: one tenant holds at most a tenth of a pool's outbound slots.
//! - [`signature`]: Standard Webhooks headers and signatures.

pub mod address;
pub mod client;
pub mod signature;
pub mod slots;
pub mod target;

pub use address::is_public;
pub use client::{ClientOptions, MAX_ANSWER_BYTES, ReadError, client, read_capped};
pub use slots::{Slot, Slots};
pub use target::{PublicOnly, TargetRules};
