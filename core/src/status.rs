//! What a status change says ([`StatusRequest`]) and how the snapshot shows a change that is
//! stored but not yet acknowledged.
//!
//! # What it guarantees
//!
//! - **Bounds fixed by the protocol are checked before anything is stored**: a `duration_ms`
//!   outside 1 000 ms to 7 days or a note over 100 characters is an
//!   [`InvalidInput`](crate::ClientError::InvalidInput) error whose detail starts with the
//!   field's wire name, and nothing is queued. What only the server knows (whether the
//!   account has that custom status, whether its base is the status) is the server's to
//!   judge: such an op is wedged with the server's `422 invalid_field`, which names the field.
//! - **A timed change keeps its exact end.** The op stores the duration, not an end time: the
//!   server computes `until = intent_at + duration_ms` from the op's `intent_at`, taken when
//!   the user chose. A change made offline and delivered an hour later still ends when the
//!   user meant; one whose end has passed by then is answered `applied: false` and the
//!   device shows the server's status.
//! - **The pending change is shown as the server will make it**: `until` from its `intent_at`
//!   and its duration (or the custom status's default duration), `then` by the server's rule
//!   (the status before the change, or that one's own `then` if it was timed), cause
//!   `manual`, no admin.

use presence_protocol::{AgentStatus, Cause, CustomStatus, Millis, StatusView};

use crate::error::Error;

/// The shortest timed status the protocol accepts.
pub const MIN_DURATION_MS: i64 = 1_000;
/// The longest timed status: 7 days.
pub const MAX_DURATION_MS: i64 = 7 * 86_400_000;
/// The longest note, in characters.
pub const MAX_NOTE_CHARS: usize = 100;

/// A status change as the user makes it: the status, and optionally how long it lasts, what
/// follows, which of the account's custom statuses it is and a note for teammates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusRequest {
    pub status: AgentStatus,
    /// The status ends this long after the moment it was chosen (1 000 ms to 7 days). With a
    /// `custom_status` and no duration, the custom status's default duration applies.
    pub duration_ms: Option<i64>,
    /// What the status becomes at its end; `None`: the status before this change (or, if
    /// that one was timed, its own `then`).
    pub then: Option<AgentStatus>,
    /// The id of one of the account's custom statuses whose `base` is `status`.
    pub custom_status: Option<String>,
    /// Free text for teammates (at most 100 characters), never shown to visitors.
    pub note: Option<String>,
}

impl StatusRequest {
    /// A plain change to `status`: untimed, no custom status, no note.
    pub fn new(status: AgentStatus) -> StatusRequest {
        StatusRequest {
            status,
            duration_ms: None,
            then: None,
            custom_status: None,
            note: None,
        }
    }

    /// Checks the bounds the protocol fixes (see the module docs). An empty note is no note.
    pub(crate) fn validated(mut self) -> Result<StatusRequest, Error> {
        if let Some(d) = self.duration_ms
            && !(MIN_DURATION_MS..=MAX_DURATION_MS).contains(&d)
        {
            return Err(Error::InvalidInput(format!(
                "duration_ms: must be between {MIN_DURATION_MS} and {MAX_DURATION_MS} ms (7 days), got {d}"
            )));
        }
        if let Some(n) = &self.note {
            let chars = n.chars().count();
            if chars > MAX_NOTE_CHARS {
                return Err(Error::InvalidInput(format!(
                    "note: at most {MAX_NOTE_CHARS} characters, got {chars}"
                )));
            }
        }
        if self.custom_status.as_deref() == Some("") {
            return Err(Error::InvalidInput(
                "custom_status: must not be empty".into(),
            ));
        }
        self.note = self.note.filter(|n| !n.is_empty());
        Ok(self)
    }
}

/// The status shown for a change stored on this device but not yet acknowledged: what the
/// server will make of it, on top of `confirmed` (the server's status as last heard).
pub(crate) fn pending_view(
    req: &StatusRequest,
    intent_at: Option<Millis>,
    confirmed: &StatusView,
    custom_statuses: &[CustomStatus],
) -> StatusView {
    let duration = req.duration_ms.or_else(|| {
        let id = req.custom_status.as_deref()?;
        custom_statuses
            .iter()
            .find(|c| c.id == id)
            .and_then(|c| c.default_duration_ms)
    });
    let until = match (duration, intent_at) {
        (Some(d), Some(at)) => Some(at + d),
        _ => None,
    };
    let before = match confirmed.until {
        Some(_) => confirmed.then.unwrap_or(confirmed.status),
        None => confirmed.status,
    };
    StatusView {
        status: req.status,
        version: confirmed.version,
        intent_at: intent_at.unwrap_or(confirmed.intent_at),
        changed_by_device: None,
        until,
        then: duration.map(|_| req.then.unwrap_or(before)),
        custom_status: req.custom_status.clone(),
        note: req.note.clone(),
        cause: Cause::Manual,
        changed_by_agent: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(duration_ms: Option<i64>, note: Option<&str>) -> StatusRequest {
        StatusRequest {
            duration_ms,
            note: note.map(str::to_owned),
            ..StatusRequest::new(AgentStatus::Busy)
        }
    }

    #[test]
    fn out_of_bounds_durations_and_long_notes_are_refused_naming_the_field() {
        let long = "x".repeat(MAX_NOTE_CHARS + 1);
        for (r, field) in [
            (req(Some(999), None), "duration_ms"),
            (req(Some(0), None), "duration_ms"),
            (req(Some(-5), None), "duration_ms"),
            (req(Some(MAX_DURATION_MS + 1), None), "duration_ms"),
            (req(None, Some(&long)), "note"),
        ] {
            match r.clone().validated() {
                Err(Error::InvalidInput(d)) => {
                    assert!(d.starts_with(&format!("{field}:")), "{r:?}: {d}")
                }
                other => panic!("{r:?}: {other:?}"),
            }
        }
        let edge = "é".repeat(MAX_NOTE_CHARS);
        for ok in [
            req(Some(MIN_DURATION_MS), None),
            req(Some(MAX_DURATION_MS), Some(&edge)),
        ] {
            assert!(ok.clone().validated().is_ok(), "{ok:?}");
        }
        assert_eq!(req(None, Some("")).validated().unwrap().note, None);
    }

    #[test]
    fn a_pending_timed_change_ends_relative_to_its_intent_and_returns_to_the_status_before() {
        let mut confirmed = StatusView::manual(AgentStatus::Online, 4, 1_000, None);
        let shown = pending_view(
            &req(Some(60_000), Some("dentist")),
            Some(5_000),
            &confirmed,
            &[],
        );
        assert_eq!(shown.until, Some(65_000));
        assert_eq!(shown.then, Some(AgentStatus::Online));
        assert_eq!(shown.note.as_deref(), Some("dentist"));
        assert_eq!(shown.cause, Cause::Manual);

        // On top of a timed status: that one's own `then` is what it returns to.
        confirmed.status = AgentStatus::Offline;
        confirmed.until = Some(9_000);
        confirmed.then = Some(AgentStatus::Busy);
        let shown = pending_view(&req(Some(1_000), None), Some(5_000), &confirmed, &[]);
        assert_eq!(shown.then, Some(AgentStatus::Busy));

        // Untimed: no end, nothing follows.
        let shown = pending_view(&req(None, None), Some(5_000), &confirmed, &[]);
        assert_eq!((shown.until, shown.then), (None, None));
    }

    #[test]
    fn a_pending_custom_status_without_a_duration_takes_its_default() {
        let lunch = CustomStatus {
            id: "lunch".into(),
            label: "Lunch".into(),
            emoji: None,
            base: AgentStatus::Busy,
            default_duration_ms: Some(3_600_000),
        };
        let confirmed = StatusView::manual(AgentStatus::Online, 1, 0, None);
        let r = StatusRequest {
            custom_status: Some("lunch".into()),
            then: Some(AgentStatus::Offline),
            ..StatusRequest::new(AgentStatus::Busy)
        };
        let shown = pending_view(&r, Some(10), &confirmed, std::slice::from_ref(&lunch));
        assert_eq!(shown.until, Some(3_600_010));
        assert_eq!(shown.then, Some(AgentStatus::Offline));
        assert_eq!(shown.custom_status.as_deref(), Some("lunch"));
        // An explicit duration wins over the default.
        let r = StatusRequest {
            duration_ms: Some(5_000),
            ..r
        };
        assert_eq!(
            pending_view(&r, Some(10), &confirmed, &[lunch]).until,
            Some(5_010)
        );
    }
}
