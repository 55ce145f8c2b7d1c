//! One attempt: the body and Standard Webhooks headers an event is sent with, and how the
//! answer counts.
//!
//! Guarantees:
//! - The body is the contract's event (`type`, `timestamp`, `account`, `seq`, `data`); the
//!   `webhook-id` is the event's id, the same on every attempt; `webhook-signature` carries
//!   one `v1,` signature per signing secret, separated by a space.
//! - Only a 2xx counts as delivered; a `3xx` is not followed. `410` says the endpoint is
//!   gone. At most [`crate::outbound::MAX_ANSWER_BYTES`] of an answer is read (a 2xx with a
//!   longer body still counts: the status line is the answer).
//! - The whole attempt, connection included, is bounded by the policy's timeout.

use std::time::{Duration, Instant};

use reqwest::StatusCode;

use super::WebhookRow;
use crate::outbound::signature::Secret;
use crate::outbound::{ReadError, read_capped};

/// How one attempt ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    pub status: Option<u16>,
    /// Why it did not count as delivered; `None` after a 2xx.
    pub error: Option<String>,
    /// `Retry-After`, when the endpoint sent one.
    pub retry_after: Option<Duration>,
    pub duration: Duration,
}

impl Attempt {
    pub fn ok(&self) -> bool {
        self.error.is_none()
    }

    pub fn gone(&self) -> bool {
        self.status == Some(StatusCode::GONE.as_u16())
    }
}

/// The signature header's value: one `v1,...` per secret that signs at `now`.
pub fn signature(row: &WebhookRow, id: &str, timestamp: i64, body: &[u8], now: i64) -> String {
    row.signing_secrets(now)
        .into_iter()
        .filter_map(|s| Secret::parse(s).ok())
        .map(|s| s.sign(id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

/// POSTs `body` to the endpoint as event `id`, signed at `now` (ms).
pub async fn send(
    client: &reqwest::Client,
    row: &WebhookRow,
    id: &str,
    body: Vec<u8>,
    now: i64,
    timeout: Duration,
) -> Attempt {
    let timestamp = now.div_euclid(1000);
    let started = Instant::now();
    let request = client
        .post(&row.url)
        .header("content-type", "application/json")
        .header("webhook-id", id)
        .header("webhook-timestamp", timestamp.to_string())
        .header(
            "webhook-signature",
            signature(row, id, timestamp, &body, now),
        )
        .timeout(timeout)
        .body(body);
    let answered = tokio::time::timeout(timeout, async {
        let resp = request.send().await?;
        let status = resp.status();
        let retry_after = crate::push::http::retry_after(resp.headers());
        let read = read_capped(resp).await;
        Ok::<_, reqwest::Error>((status, retry_after, read))
    })
    .await;
    let duration = started.elapsed();
    let failed = |status: Option<u16>, why: String, retry_after| Attempt {
        status,
        error: Some(why),
        retry_after,
        duration,
    };
    match answered {
        Err(_) => failed(None, format!("no answer within {timeout:?}"), None),
        Ok(Err(e)) => failed(None, describe(&e), None),
        Ok(Ok((status, retry_after, read))) => {
            if status.is_success() {
                Attempt {
                    status: Some(status.as_u16()),
                    error: None,
                    retry_after: None,
                    duration,
                }
            } else {
                let mut why = format!("answered {status}");
                if status.is_redirection() {
                    why.push_str(" (redirects are not followed)");
                }
                if let Err(ReadError::TooLarge) = read {
                    why.push_str(", with an answer too large to read");
                }
                failed(Some(status.as_u16()), why, retry_after)
            }
        }
    }
}

/// A transport error in words, without the URL (it is the customer's and may carry a token).
fn describe(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_request() || e.is_body() {
        "the connection failed"
    } else {
        "the request failed"
    };
    let mut source = std::error::Error::source(e);
    let mut detail = String::new();
    while let Some(s) = source {
        detail = s.to_string();
        source = s.source();
    }
    if detail.is_empty() {
        kind.to_owned()
    } else {
        format!("{kind}: {detail}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn during_a_rotation_both_secrets_sign_separated_by_a_space() {
        let old = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_owned();
        let new = super::super::rules::new_secret();
        let row = WebhookRow {
            previous_secret: Some(old.clone()),
            previous_until: Some(10_000),
            ..WebhookRow::sample(&new)
        };
        let body = br#"{"test": 2432232314}"#;
        let sig = signature(&row, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body, 0);
        let parts: Vec<&str> = sig.split(' ').collect();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[1], "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        assert_eq!(
            parts[0],
            Secret::parse(&new)
                .unwrap()
                .sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body)
        );
        let after = signature(
            &row,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            body,
            10_000,
        );
        assert_eq!(after, parts[0]);
    }
}
