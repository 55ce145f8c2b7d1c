//! What the HTTP layer counts: each answered request's latency by route template and status
//! class (`presence_http_request_duration_seconds`), the event streams open by kind
//! (`presence_streams`) and the connections open (`presence_connections`).
//!
//! - The route label is the matched route's template (`/v1/admin/agents/{id}`), never the
//!   raw path, so its values are bounded by the routes; the status label is the class
//!   (`2xx`, `4xx`, ...). Event streams are not timed (they last as long as their reader):
//!   they are counted open instead.
//! - Open counts are guards ([`Open`]): taken when a stream or connection starts, given back
//!   when it is dropped, however it ends.

use std::hash::{Hash, Hasher};
use std::time::Duration;

use axum::extract::MatchedPath;
use axum::http::StatusCode;
use prometheus_client::encoding::{EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Upper bounds (seconds) of the request latency histogram's buckets.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A matched route's template as a label value: the router's own shared string, so a label
/// set costs a reference count, not an allocation.
#[derive(Clone, Debug)]
pub struct Route(MatchedPath);

impl PartialEq for Route {
    fn eq(&self, other: &Route) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

impl Eq for Route {}

impl Hash for Route {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.as_str().hash(state);
    }
}

impl EncodeLabelValue for Route {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        EncodeLabelValue::encode(&self.0.as_str(), encoder)
    }
}

/// `(route, status_class)` of one request.
type RequestLabels = (
    [(&'static str, Route); 1],
    [(&'static str, &'static str); 1],
);

type Requests = Family<RequestLabels, Histogram, fn() -> Histogram>;

/// The kinds of event stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamKind {
    /// `GET /v1/me/events`.
    Device,
    /// `GET /v1/widget/{slug}/events`.
    Widget,
    /// `GET /v1/admin/events`.
    Admin,
}

impl StreamKind {
    const ALL: [StreamKind; 3] = [StreamKind::Device, StreamKind::Widget, StreamKind::Admin];

    fn as_str(self) -> &'static str {
        match self {
            StreamKind::Device => "device",
            StreamKind::Widget => "widget",
            StreamKind::Admin => "admin",
        }
    }
}

pub struct HttpMetrics {
    requests: Requests,
    streams: Family<[(&'static str, &'static str); 1], Gauge>,
    /// Each kind's series, looked up once: `streams` indexed as [`StreamKind::ALL`].
    open_streams: [Gauge; 3],
    connections: Gauge,
}

impl Default for HttpMetrics {
    fn default() -> HttpMetrics {
        let streams = Family::<[(&'static str, &'static str); 1], Gauge>::default();
        let open_streams =
            StreamKind::ALL.map(|k| streams.get_or_create_owned(&[("kind", k.as_str())]));
        HttpMetrics {
            requests: Requests::new_with_constructor(|| Histogram::new(BUCKETS)),
            streams,
            open_streams,
            connections: Gauge::default(),
        }
    }
}

/// Counted open until dropped.
pub struct Open(Gauge);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// The status class label of an answer.
fn class(status: StatusCode) -> &'static str {
    match status.as_u16() / 100 {
        1 => "1xx",
        2 => "2xx",
        3 => "3xx",
        4 => "4xx",
        _ => "5xx",
    }
}

impl HttpMetrics {
    pub(super) fn register(&self, r: &mut Registry) {
        r.register(
            "presence_http_request_duration_seconds",
            "From a request reaching its route to its answer, by route template and status class (event streams not included)",
            self.requests.clone(),
        );
        r.register(
            "presence_streams",
            "Open event streams, by kind (device, widget, admin)",
            self.streams.clone(),
        );
        r.register(
            "presence_connections",
            "Open client connections",
            self.connections.clone(),
        );
    }

    /// One request to `route`, answered `status` after `took`.
    pub fn answered(&self, route: &MatchedPath, status: StatusCode, took: Duration) {
        let labels = (
            [("route", Route(route.clone()))],
            [("status_class", class(status))],
        );
        self.requests
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
    }

    /// One more stream of `kind`, until the guard is dropped.
    pub fn stream_opened(&self, kind: StreamKind) -> Open {
        let i = StreamKind::ALL.iter().position(|k| *k == kind).unwrap_or(0);
        let g = self.open_streams[i].clone();
        g.inc();
        Open(g)
    }

    /// One more connection, until the guard is dropped.
    pub fn connection_opened(&self) -> Open {
        let g = self.connections.clone();
        g.inc();
        Open(g)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(m: &HttpMetrics) -> String {
        let mut r = Registry::default();
        m.register(&mut r);
        let mut out = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut out, &r).unwrap();
        out
    }

    #[test]
    fn streams_and_connections_count_while_their_guards_live() {
        let m = HttpMetrics::default();
        let a = m.stream_opened(StreamKind::Admin);
        let _w = m.stream_opened(StreamKind::Widget);
        let c = m.connection_opened();
        let out = page(&m);
        assert!(
            out.contains("presence_streams{kind=\"admin\"} 1\n"),
            "{out}"
        );
        assert!(
            out.contains("presence_streams{kind=\"widget\"} 1\n"),
            "{out}"
        );
        assert!(
            out.contains("presence_streams{kind=\"device\"} 0\n"),
            "{out}"
        );
        assert!(out.contains("presence_connections 1\n"), "{out}");
        drop((a, c));
        let out = page(&m);
        assert!(
            out.contains("presence_streams{kind=\"admin\"} 0\n"),
            "{out}"
        );
        assert!(out.contains("presence_connections 0\n"), "{out}");
    }
}
