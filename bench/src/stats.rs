//! Percentiles and slopes.

use std::time::Duration;

use serde_json::{Value, json};

/// Samples in milliseconds (fractional).
#[derive(Debug, Default, Clone)]
pub struct Samples {
    v: Vec<f64>,
}

impl Samples {
    pub fn push_ms(&mut self, ms: f64) {
        self.v.push(ms);
    }

    pub fn push(&mut self, d: Duration) {
        self.v.push(d.as_secs_f64() * 1000.0);
    }

    /// Adds another set's samples.
    pub fn extend(&mut self, other: &Samples) {
        self.v.extend_from_slice(&other.v);
    }

    /// Nearest-rank percentile, `p` in 0..=100.
    pub fn pct(&self, p: f64) -> Option<f64> {
        if self.v.is_empty() {
            return None;
        }
        let mut s = self.v.clone();
        s.sort_by(|a, b| a.total_cmp(b));
        let rank = ((p / 100.0) * s.len() as f64).ceil() as usize;
        Some(s[rank.clamp(1, s.len()) - 1])
    }

    pub fn p50(&self) -> Option<f64> {
        self.pct(50.0)
    }

    pub fn p99(&self) -> Option<f64> {
        self.pct(99.0)
    }

    pub fn summary(&self) -> Value {
        let mean = if self.v.is_empty() {
            None
        } else {
            Some(self.v.iter().sum::<f64>() / self.v.len() as f64)
        };
        json!({
            "n": self.v.len(),
            "min": self.pct(0.0).map(round3),
            "p50": self.p50().map(round3),
            "p90": self.pct(90.0).map(round3),
            "p99": self.p99().map(round3),
            "max": self.pct(100.0).map(round3),
            "mean": mean.map(round3),
        })
    }
}

pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

pub fn median(v: &[f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let n = s.len();
    Some(if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    })
}

/// Least-squares slope of y over x.
pub fn slope(points: &[(f64, f64)]) -> Option<f64> {
    if points.len() < 2 {
        return None;
    }
    let n = points.len() as f64;
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    (sxx > 0.0).then(|| sxy / sxx)
}

/// One server deadline and when the bench saw its event: (deadline in server ms, the
/// server-to-local offset estimated by the request that set it, that request's round trip,
/// the event's local ms).
pub type Sighting = (i64, f64, f64, f64);

/// How late each event came after its deadline. Both clocks are monotonic and the server's
/// runs from one base, so one offset holds for the whole run: it is taken from the request
/// with the shortest round trip (NTP's rule), its error at most half that round trip plus the
/// millisecond the server floors to.
pub fn lags_after_deadlines(raw: Vec<Sighting>) -> Samples {
    let offset = raw
        .iter()
        .min_by(|a, b| a.2.total_cmp(&b.2))
        .map(|x| x.1)
        .unwrap_or(0.0);
    let mut lags = Samples::default();
    for (deadline, _, _, at) in raw {
        lags.push_ms(at - (deadline as f64 + offset));
    }
    lags
}
