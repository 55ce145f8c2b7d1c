//! Presence client engine (see the crate docs once filled).
