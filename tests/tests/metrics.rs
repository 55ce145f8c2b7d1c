//! `/metrics` against what reads it, on whichever backend the run uses: the Grafana dashboard
//! (docs/grafana/presence.json) queries only metrics a live server exposes, with the type
//! its query needs (a `_bucket`, `_sum` or `_count` of a histogram); and the metrics its
//! service-level panels rest on move with a little real traffic (a login and a failed one, a
//! status change with a device, widget and admin stream open, a webhook delivered to a
//! loopback receiver, a lease running out). `presence_cluster_*` metrics exist only on a
//! cluster node, so they are checked on the cluster run.

use std::collections::{BTreeSet, HashMap};

use presence_test_support::contract::{metric, metrics_page, owner_session};
use presence_test_support::receiver::Receiver;
use presence_test_support::{DEADLINE, TestServer, cluster_mode, eventually};
use serde_json::{Value, json};

const DASHBOARD: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/grafana/presence.json");

/// PromQL words that are not metric names: aggregations, modifiers, operators.
const KEYWORDS: &[&str] = &[
    "sum",
    "min",
    "max",
    "avg",
    "count",
    "stddev",
    "stdvar",
    "topk",
    "bottomk",
    "quantile",
    "count_values",
    "group",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "and",
    "or",
    "unless",
    "offset",
];

/// The metric names a PromQL expression selects: identifiers outside label matchers
/// (`{...}`), ranges (`[...]`) and strings, that are neither a function (followed by `(`), a
/// keyword, nor a label in a `by`/`without`/`on`/`ignoring`/`group_*` list.
fn metric_names(expr: &str) -> Vec<String> {
    let b = expr.as_bytes();
    let mut names = Vec::new();
    let mut i = 0;
    let skip_to = |from: usize, close: u8| -> usize {
        let mut j = from;
        let mut quoted = false;
        while j < b.len() {
            match b[j] {
                b'\\' if quoted => j += 1,
                b'"' => quoted = !quoted,
                c if c == close && !quoted => return j + 1,
                _ => {}
            }
            j += 1;
        }
        j
    };
    while i < b.len() {
        let c = b[i];
        if c == b'{' {
            i = skip_to(i + 1, b'}');
        } else if c == b'[' {
            i = skip_to(i + 1, b']');
        } else if c == b'"' {
            i = skip_to(i + 1, b'"');
        } else if c.is_ascii_digit() || c == b'.' {
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'.') {
                i += 1;
            }
        } else if c.is_ascii_alphabetic() || c == b'_' || c == b':' {
            let start = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b':') {
                i += 1;
            }
            let word = &expr[start..i];
            let mut next = i;
            while next < b.len() && b[next] == b' ' {
                next += 1;
            }
            let called = b.get(next) == Some(&b'(');
            if matches!(
                word,
                "by" | "without" | "on" | "ignoring" | "group_left" | "group_right"
            ) && called
            {
                i = skip_to(next + 1, b')');
            } else if !called && !KEYWORDS.contains(&word) {
                names.push(word.to_owned());
            }
        } else {
            i += 1;
        }
    }
    names
}

/// Every query of the dashboard: each panel target's `expr`, and the metric of each
/// `label_values(metric, label)` variable.
fn dashboard_queries(dash: &Value) -> Vec<String> {
    let mut out = Vec::new();
    fn panels(v: &Value, out: &mut Vec<String>) {
        for p in v.as_array().into_iter().flatten() {
            for t in p["targets"].as_array().into_iter().flatten() {
                let e = t["expr"].as_str().expect("every target has an expr");
                out.push(e.to_owned());
            }
            panels(&p["panels"], out);
        }
    }
    panels(&dash["panels"], &mut out);
    for var in dash["templating"]["list"].as_array().into_iter().flatten() {
        let q = var["query"]["query"].as_str().or(var["query"].as_str());
        if let Some(arg) = q.and_then(|q| q.strip_prefix("label_values(")) {
            out.push(arg.split(',').next().unwrap_or_default().trim().to_owned());
        }
    }
    out
}

/// The exposition's families (`# TYPE name type`) and the names its samples carry.
struct Exposition {
    types: HashMap<String, String>,
    samples: BTreeSet<String>,
}

fn parse(page: &str) -> Exposition {
    let mut types = HashMap::new();
    let mut samples = BTreeSet::new();
    for line in page.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut it = rest.split(' ');
            if let (Some(n), Some(t)) = (it.next(), it.next()) {
                types.insert(n.to_owned(), t.to_owned());
            }
        } else if !line.starts_with('#') && !line.is_empty() {
            let end = line.find(['{', ' ']).unwrap_or(line.len());
            samples.insert(line[..end].to_owned());
        }
    }
    Exposition { types, samples }
}

/// Why `name`, as a query selects it, is not in the exposition; `None` if it is.
fn missing(x: &Exposition, name: &str) -> Option<String> {
    if !x.samples.contains(name) {
        return Some(format!("{name}: no sample"));
    }
    match x.types.get(name).map(String::as_str) {
        Some("counter" | "gauge") => return None,
        Some(t) => return Some(format!("{name}: a {t}, selected as a series")),
        None => {}
    }
    let family = ["_bucket", "_sum", "_count"]
        .iter()
        .find_map(|s| name.strip_suffix(s));
    match family.and_then(|f| x.types.get(f)).map(String::as_str) {
        Some("histogram") => None,
        Some(t) => Some(format!("{name}: its family is a {t}, not a histogram")),
        None => Some(format!("{name}: no # TYPE for it or its family")),
    }
}

/// What the dashboard queries that `page` lacks (the cluster's metrics skipped off a
/// cluster), and how many names were checked.
fn dashboard_gaps(dash: &Value, page: &str, cluster: bool) -> (Vec<String>, usize) {
    let x = parse(page);
    let names: BTreeSet<String> = dashboard_queries(dash)
        .iter()
        .flat_map(|q| metric_names(q))
        .collect();
    let checked: Vec<&String> = names
        .iter()
        .filter(|n| cluster || !n.starts_with("presence_cluster_"))
        .collect();
    let gaps = checked.iter().filter_map(|n| missing(&x, n)).collect();
    (gaps, checked.len())
}

/// The value of one labelled series (`name{labels}`), if exposed.
fn series(page: &str, selector: &str) -> Option<f64> {
    page.lines()
        .find_map(|l| l.strip_prefix(selector)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn every_metric_the_dashboard_queries_is_exposed_and_moves_with_traffic() {
    let srv = TestServer::start().await;
    let api = srv.api();
    let acc = api.create_account("acme").await;
    let owner = owner_session(&acc);

    let mut rx = Receiver::start().await;
    let r = api
        .post(
            "/v1/admin/webhooks",
            Some(&acc.owner_token),
            json!({"url": rx.url, "events": ["agent.status"]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let hook = r.body["id"].as_str().expect("an id").to_owned();
    let wrong = api
        .login_raw(
            &acc.slug,
            &acc.email,
            "not-the-password",
            "guess",
            Value::Null,
        )
        .await;
    assert_eq!(wrong.status, 401, "{}", wrong.body);

    let mut device = api.sse("/v1/me/events", Some(&owner.token)).await;
    device.wait_for("snapshot", |_| true).await;
    let _widget = api
        .sse(&format!("/v1/widget/{}/events", acc.widget_key), None)
        .await;
    let _admin = api.sse("/v1/admin/events", Some(&acc.owner_token)).await;
    assert_eq!(api.set_status(&owner, "busy").await.status, 200);
    device.wait_for("status", |s| s["status"] == "busy").await;
    let delivered = rx.next_of("agent.status").await;
    assert_eq!(delivered.kind(), "agent.status");
    let r = api
        .get(
            &format!("/v1/admin/webhooks/{hook}/deliveries"),
            Some(&acc.owner_token),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);

    eventually(
        "the status change and its webhook are counted",
        DEADLINE,
        || {
            let api = api.clone();
            async move {
                let page = metrics_page(&api).await;
                metric(&page, "presence_status_fanout_seconds_count") >= 1.0
                    && metric(&page, "presence_webhook_latency_seconds_count") >= 1.0
                    && series(&page, "presence_webhook_deliveries_total{result=\"ok\"}")
                        .is_some_and(|n| n >= 1.0)
            }
        },
    )
    .await;
    let page = metrics_page(&api).await;
    assert!(metric(&page, "presence_login_failures_total") >= 1.0);
    for (kind, open) in [("device", 1.0), ("widget", 1.0), ("admin", 1.0)] {
        assert_eq!(
            series(&page, &format!("presence_streams{{kind=\"{kind}\"}}")),
            Some(open),
            "{kind} streams in:\n{page}"
        );
    }
    assert!(metric(&page, "presence_connections") >= 4.0, "{page}");
    let answered = |route: &str| {
        series(
            &page,
            &format!(
                "presence_http_request_duration_seconds_count{{route=\"{route}\",status_class=\"2xx\"}}"
            ),
        )
    };
    assert!(
        answered("/v1/me/status").is_some_and(|n| n >= 1.0),
        "{page}"
    );
    assert!(
        answered("/v1/admin/webhooks/{id}/deliveries").is_some_and(|n| n >= 1.0),
        "the route's template, not its path:\n{page}"
    );
    assert!(
        !page.contains(&hook),
        "no raw path (with an id) as a label value"
    );
    let failed_login = series(
        &page,
        "presence_http_request_duration_seconds_count{route=\"/v1/login\",status_class=\"4xx\"}",
    );
    assert!(failed_login.is_some_and(|n| n >= 1.0), "{page}");
    assert!(
        !page
            .lines()
            .any(|l| l.starts_with("presence_http_request_duration_seconds")
                && l.contains("/events\"")),
        "event streams are not timed:\n{page}"
    );

    // A lease that runs out.
    let r = api
        .put(
            "/v1/admin/settings",
            Some(&acc.owner_token),
            json!({"active_interval_ms": 200, "active_ttl_ms": 1000}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    api.login(&acc.slug, &acc.email, &acc.password, "short-lived")
        .await;

    eventually("the expiry's lag is counted", DEADLINE, || {
        let api = api.clone();
        async move {
            metric(
                &metrics_page(&api).await,
                "presence_expiry_lag_seconds_count",
            ) >= 1.0
        }
    })
    .await;
    let page = metrics_page(&api).await;
    let dash: Value = serde_json::from_str(&std::fs::read_to_string(DASHBOARD).expect("dashboard"))
        .expect("the dashboard is JSON");
    let (gaps, checked) = dashboard_gaps(&dash, &page, cluster_mode());
    assert!(checked >= 15, "the dashboard names {checked} metrics");
    assert!(
        gaps.is_empty(),
        "the dashboard queries what /metrics lacks: {gaps:#?}\n{page}"
    );
}

#[test]
fn a_panel_naming_a_metric_that_is_not_exposed_is_caught() {
    let page = "# HELP presence_logins_total Successful logins.\n\
                # TYPE presence_logins_total counter\n\
                presence_logins_total 3\n\
                # TYPE presence_webhook_backlog gauge\n\
                presence_webhook_backlog 0\n\
                # TYPE presence_expiry_lag_seconds histogram\n\
                presence_expiry_lag_seconds_bucket{le=\"+Inf\"} 1\n\
                presence_expiry_lag_seconds_sum 0.1\n\
                presence_expiry_lag_seconds_count 1\n";
    let dash = |expr: &str| {
        json!({
            "panels": [{"type": "row", "panels": []}, {"targets": [{"expr": expr}]}],
            "templating": {"list": [{"query": {"query": "label_values(presence_logins_total, instance)"}}]}
        })
    };
    let ok = "histogram_quantile(0.99, sum by (le, route) (rate(presence_expiry_lag_seconds_bucket{instance=~\"$instance\",x=\"a{b}\"}[$__rate_interval]))) / sum(presence_webhook_backlog) or on (job) max without (le) (presence_logins_total offset 5m)";
    assert_eq!(dashboard_gaps(&dash(ok), page, false), (vec![], 3));
    for (expr, gap) in [
        ("rate(presence_logins_totl[5m])", "presence_logins_totl"),
        (
            "histogram_quantile(0.99, rate(presence_webhook_backlog_bucket[5m]))",
            "presence_webhook_backlog_bucket",
        ),
        ("presence_expiry_lag_seconds", "presence_expiry_lag_seconds"),
    ] {
        let (gaps, _) = dashboard_gaps(&dash(expr), page, false);
        assert_eq!(gaps.len(), 1, "{expr}: {gaps:?}");
        assert!(gaps[0].starts_with(gap), "{expr}: {gaps:?}");
    }
    let (gaps, n) = dashboard_gaps(&dash("presence_cluster_sweeps_total"), page, false);
    assert_eq!((gaps.len(), n), (0, 1), "cluster metrics off a cluster");
    let (gaps, _) = dashboard_gaps(&dash("presence_cluster_sweeps_total"), page, true);
    assert_eq!(gaps.len(), 1, "cluster metrics on a cluster");
}
