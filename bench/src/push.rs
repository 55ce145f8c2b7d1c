//! Push providers, against the wire-level doubles of `presence_test_support::push` (FCM with
//! its OAuth2 endpoint over HTTPS, APNs over HTTP/2 with TLS, a UnifiedPush endpoint that
//! decrypts RFC 8291): how long before a background lease ends its renew push arrives, how
//! long a status change takes to reach each double, and how many background pushes an hour
//! a phone gets at the default timings.
//!
//! The server runs in this process with the doubles (release build), all on loopback. The
//! renew lead uses short leases (background ttl 2 s, renew margin 1 s); the hourly budget
//! runs the default timings scaled down 1,000 times (30 min -> 1.8 s, 5 min -> 300 ms), since
//! the count per lease cycle does not depend on the scale.

use std::time::Duration;

use presence_server::push::{ApnsConfig, FcmConfig};
use presence_test_support::push::Double;
use presence_test_support::push::apns::{self, ApnsDouble};
use presence_test_support::push::fcm::FcmDouble;
use presence_test_support::push::tls::TestCa;
use presence_test_support::push::unifiedpush::UnifiedPushDouble;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::Ctx;
use crate::proc::Res;
use crate::stats::{Samples, round3};

const PROVIDERS: [&str; 3] = ["fcm", "apns", "unifiedpush"];
const LEAD_TTL_MS: i64 = 2_000;
const LEAD_MARGIN_MS: i64 = 1_000;
/// The defaults (30 min, 5 min), 1,000 times faster.
const SCALE: f64 = 1_000.0;

struct Doubles {
    _ca: TestCa,
    fcm: FcmDouble,
    apns: ApnsDouble,
    up: UnifiedPushDouble,
}

impl Doubles {
    fn double(&self, p: &str) -> &Double {
        match p {
            "fcm" => &self.fcm.double,
            "apns" => &self.apns.double,
            _ => &self.up.double,
        }
    }

    fn registration(&self, p: &str, device: &str) -> Value {
        match p {
            "fcm" => json!({"provider": "fcm", "token": format!("{device}:APA91b")}),
            "apns" => json!({"provider": "apns",
                             "token": device.bytes().map(|b| format!("{b:02x}")).collect::<String>().repeat(4)}),
            _ => json!({"provider": "unifiedpush", "token": self.up.endpoint(device),
                        "p256dh": self.up.keys().p256dh(), "auth": self.up.keys().auth_b64()}),
        }
    }
}

struct Api {
    url: String,
    http: reqwest::Client,
}

impl Api {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Value,
    ) -> Res<Value> {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.url))
            .json(&body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.map_err(|e| e.to_string())?;
        let status = resp.status();
        let text = resp.text().await.map_err(|e| e.to_string())?;
        if !status.is_success() {
            return Err(format!("{path}: {status} {text}"));
        }
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// An account with its owner logged in, and the given settings.
    async fn account(&self, slug: &str, settings: Value) -> Res<(String, String)> {
        let body = json!({"name": slug, "slug": slug,
                          "owner": {"name": "Owner", "email": format!("owner@{slug}.test"), "password": "bench-password-1"}});
        self.call(
            reqwest::Method::POST,
            "/v1/accounts",
            Some("test-admin-token"),
            body,
        )
        .await?;
        let desk = self.login(slug, "desk", None).await?;
        let token = desk["token"].as_str().unwrap_or_default().to_owned();
        self.call(
            reqwest::Method::PUT,
            "/v1/admin/settings",
            Some(&token),
            settings,
        )
        .await?;
        Ok((slug.to_owned(), token))
    }

    async fn login(&self, slug: &str, device: &str, push: Option<Value>) -> Res<Value> {
        self.call(
            reqwest::Method::POST,
            "/v1/login",
            None,
            json!({"account": slug, "email": format!("owner@{slug}.test"), "password": "bench-password-1",
                   "device": {"id": device, "platform": "android", "name": device, "app_version": "bench"},
                   "push": push}),
        )
        .await
    }

    async fn heartbeat(&self, token: &str) -> Res<Value> {
        self.call(
            reqwest::Method::POST,
            "/v1/session/heartbeat",
            Some(token),
            json!({"mode": "background"}),
        )
        .await
    }
}

fn ms_since(t0: Instant, at: Instant) -> f64 {
    at.duration_since(t0).as_secs_f64() * 1000.0
}

pub async fn push(ctx: &mut Ctx) -> Res<()> {
    let ca = TestCa::new();
    let d = Doubles {
        fcm: FcmDouble::start(&ca).await,
        apns: ApnsDouble::start(&ca).await,
        up: UnifiedPushDouble::start(&ca).await,
        _ca: ca,
    };
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let mut config = presence_server::Config::for_tests(dir.path());
    config.push.fcm = Some(FcmConfig {
        credentials: d.fcm.credentials.clone(),
        endpoint: d.fcm.endpoint.clone(),
    });
    config.push.apns = Some(ApnsConfig {
        key: d.apns.key_file.clone(),
        key_id: apns::KEY_ID.into(),
        team_id: apns::TEAM_ID.into(),
        topic: apns::TOPIC.into(),
        endpoint: d.apns.endpoint.clone(),
    });
    config.push.ca_file = Some(d._ca.pem_path.clone());
    let server = presence_server::start(config)
        .await
        .map_err(|e| e.to_string())?;
    let api = Api {
        url: server.url(),
        http: reqwest::Client::new(),
    };
    let t0 = Instant::now();
    let rounds = if ctx.quick { 3 } else { 10 };

    // 1. Renew lead, one phone per provider, answered by a heartbeat as the app would.
    let (slug, _) = api
        .account(
            "lead",
            json!({"background_ttl_ms": LEAD_TTL_MS, "renew_margin_ms": LEAD_MARGIN_MS,
                     "active_interval_ms": 200, "active_ttl_ms": 1000}),
        )
        .await?;
    let mut leads = Vec::new();
    for p in PROVIDERS {
        let device = format!("lead-{p}");
        let s = api
            .login(&slug, &device, Some(d.registration(p, &device)))
            .await?;
        leads.push((p, s["token"].as_str().unwrap_or_default().to_owned()));
    }
    let lead_runs = leads.iter().map(|(p, token)| {
        let (api, double) = (&api, d.double(p));
        async move {
            let mut s = Samples::default();
            let hb = api.heartbeat(token).await?;
            // Server time = local time + offset, read at the heartbeat's answer.
            let mut offset =
                hb["server_time"].as_f64().unwrap_or(0.0) - ms_since(t0, Instant::now());
            for _ in 0..rounds {
                let push = double
                    .next_of("renew", Duration::from_secs(30))
                    .await
                    .ok_or_else(|| format!("{p}: no renew push"))?;
                let arrived = ms_since(t0, push.at) + offset;
                s.push_ms(push.payload["lease_until"].as_f64().unwrap_or(0.0) - arrived);
                let hb = api.heartbeat(token).await?;
                offset = hb["server_time"].as_f64().unwrap_or(0.0) - ms_since(t0, Instant::now());
            }
            Ok::<_, String>((*p, s))
        }
    });
    let lead = futures_util::future::try_join_all(lead_runs).await?;
    for (_, token) in &leads {
        api.call(
            reqwest::Method::DELETE,
            "/v1/session",
            Some(token),
            Value::Null,
        )
        .await?;
    }

    // 2. Status change -> each double, phones without a stream.
    let (slug, desk) = api.account("status", json!({})).await?;
    for p in PROVIDERS {
        let device = format!("status-{p}");
        api.login(&slug, &device, Some(d.registration(p, &device)))
            .await?;
    }
    let changes = if ctx.quick { 20 } else { 100 };
    let mut status: Vec<(&str, Samples)> =
        PROVIDERS.iter().map(|p| (*p, Samples::default())).collect();
    for i in 0..changes {
        let body = json!({"status": if i % 2 == 0 { "busy" } else { "online" },
                          "op_id": uuid_like(i), "intent_at": null});
        let sent = Instant::now();
        api.call(reqwest::Method::PUT, "/v1/me/status", Some(&desk), body)
            .await?;
        for (p, s) in status.iter_mut() {
            let push = d
                .double(p)
                .next_of("status", Duration::from_secs(30))
                .await
                .ok_or_else(|| format!("{p}: no status push"))?;
            s.push(push.at.duration_since(sent));
        }
    }

    // 3. Background pushes per hour at the default timings, scaled.
    let (slug, _) = api
        .account(
            "budget",
            json!({"background_ttl_ms": (1_800_000.0 / SCALE) as i64, "renew_margin_ms": (300_000.0 / SCALE) as i64,
                   "active_interval_ms": 100, "active_ttl_ms": 1000}),
        )
        .await?;
    let s = api
        .login(
            &slug,
            "budget",
            Some(d.registration("unifiedpush", "budget")),
        )
        .await?;
    let token = s["token"].as_str().unwrap_or_default().to_owned();
    api.heartbeat(&token).await?;
    let cycles = if ctx.quick { 4 } else { 10 };
    let mut arrivals = Vec::new();
    while arrivals.len() < cycles {
        let push = d
            .double("unifiedpush")
            .next_of("renew", Duration::from_secs(30))
            .await
            .ok_or("budget: no renew push")?;
        if push.token != "budget" {
            continue;
        }
        arrivals.push(push.at);
        api.heartbeat(&token).await?;
    }
    let span_h = arrivals[cycles - 1]
        .duration_since(arrivals[0])
        .as_secs_f64()
        * SCALE
        / 3600.0;
    let per_h = (cycles - 1) as f64 / span_h;

    let r = &mut ctx.report;
    let mut worst_lead: Option<f64> = None;
    for (p, s) in &lead {
        let v = s.p50();
        r.set(&format!("push_renew_lead_ms_p50_{p}"), v);
        worst_lead = match (worst_lead, v) {
            (Some(w), Some(v)) => Some(w.min(v)),
            (w, v) => w.or(v),
        };
    }
    r.set("push_renew_lead_ms_p50", worst_lead);
    let mut worst_status: Option<f64> = None;
    for (p, s) in &status {
        let v = s.p50();
        r.set(&format!("push_status_to_double_p50_ms_{p}"), v);
        worst_status = match (worst_status, v) {
            (Some(w), Some(v)) => Some(w.max(v)),
            (w, v) => w.or(v),
        };
    }
    r.set("push_status_to_double_p50_ms", worst_status);
    r.set("push_background_pushes_per_h", Some(round3(per_h)));
    r.detail(
        "push",
        json!({
            "renew_lead_ms": lead.iter().map(|(p, s)| (p.to_string(), s.summary())).collect::<serde_json::Map<_, _>>(),
            "status_to_double_ms": status.iter().map(|(p, s)| (p.to_string(), s.summary())).collect::<serde_json::Map<_, _>>(),
            "background_cycles": cycles,
            "oauth_token_requests": d.fcm.token_requests(),
            "apns_provider_tokens": d.apns.provider_tokens(),
        }),
    );
    r.note(
        "push_renew_lead_ms_p50",
        &format!(
            "worst provider; renew margin {LEAD_MARGIN_MS} ms (background ttl {LEAD_TTL_MS} ms), {rounds} renews each; per provider: {}",
            lead.iter()
                .map(|(p, s)| format!("{p} {:.1}", s.p50().unwrap_or(f64::NAN)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    );
    r.note(
        "push_status_to_double_p50_ms",
        &format!(
            "worst provider, {changes} changes; per provider: {}",
            status
                .iter()
                .map(|(p, s)| format!("{p} {:.2}", s.p50().unwrap_or(f64::NAN)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    );
    r.note(
        "push_background_pushes_per_h",
        &format!(
            "{cycles} renew cycles at the defaults scaled 1/{SCALE}: one push per background ttl"
        ),
    );
    for p in PROVIDERS {
        let v = d.double(p).violations();
        if !v.is_empty() {
            return Err(format!("{p} double refused requests: {v:?}"));
        }
    }
    server.shutdown().await;
    Ok(())
}

fn uuid_like(i: usize) -> String {
    format!("00000000-0000-4000-8000-{i:012}")
}
