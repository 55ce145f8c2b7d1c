//! `report.json` and the generated part of `docs/BENCHMARKS.md`.
//!
//! The generator owns only the text between its markers; everything outside them (the
//! hand-written notes on peer tuning and profiles) is kept as it is.

use std::fmt::Write;
use std::path::Path;

use serde_json::{Map, Value, json};

pub const BEGIN: &str =
    "<!-- bench:generated:begin (written by `cargo xtask bench`; edit outside these markers) -->";
pub const END: &str = "<!-- bench:generated:end -->";

#[derive(Debug, Default)]
pub struct Report {
    pub figures: Map<String, Value>,
    pub details: Map<String, Value>,
    pub notes: Map<String, Value>,
    pub failures: Map<String, Value>,
}

impl Report {
    pub fn set(&mut self, key: &str, v: Option<f64>) {
        let v = v
            .filter(|x| x.is_finite())
            .map(|x| json!(crate::stats::round3(x)))
            .unwrap_or(Value::Null);
        self.figures.insert(key.to_owned(), v);
    }

    pub fn get(&self, key: &str) -> Option<f64> {
        self.figures.get(key).and_then(Value::as_f64)
    }

    pub fn detail(&mut self, key: &str, v: Value) {
        self.details.insert(key.to_owned(), v);
    }

    pub fn note(&mut self, key: &str, text: &str) {
        self.notes.insert(key.to_owned(), json!(text));
    }

    pub fn fail(&mut self, step: &str, why: &str) {
        self.failures.insert(step.to_owned(), json!(why));
    }

    pub fn to_json(&self, meta: Value) -> Value {
        let mut top = Map::new();
        // Every figure key of the contract is present, null when it could not be measured.
        for row in ROWS.iter().chain(PEER_ROWS).chain(EXTRA_ROWS) {
            top.insert(
                row.key.to_owned(),
                self.figures.get(row.key).cloned().unwrap_or(Value::Null),
            );
        }
        for (k, v) in &self.figures {
            top.entry(k.clone()).or_insert(v.clone());
        }
        top.insert("meta".into(), meta);
        top.insert("notes".into(), Value::Object(self.notes.clone()));
        top.insert("failures".into(), Value::Object(self.failures.clone()));
        top.insert("details".into(), Value::Object(self.details.clone()));
        Value::Object(top)
    }
}

#[derive(Clone, Copy)]
pub enum Goal {
    AtMost(f64),
    AtLeast(f64),
    Exactly(f64),
    Report,
}

pub struct Row {
    pub key: &'static str,
    pub what: &'static str,
    pub goal: Goal,
    /// Figures shown beside ours as the baseline.
    pub baselines: &'static [(&'static str, &'static str)],
}

pub const ROWS: &[Row] = &[
    Row {
        key: "status_to_other_device_p50_ms",
        what: "status PUT on device A -> `status` event on device B",
        goal: Goal::AtMost(1.0),
        baselines: &[
            ("soketi member_added", "peer_soketi_change_p50_ms"),
            ("Redis keyspace `set`", "peer_redis_change_p50_ms"),
            ("Centrifugo publication", "peer_centrifugo_change_p50_ms"),
        ],
    },
    Row {
        key: "status_to_other_device_p99_ms",
        what: "same, p99",
        goal: Goal::AtMost(5.0),
        baselines: &[],
    },
    Row {
        key: "logout_to_widget_offline_p50_ms",
        what: "`DELETE /v1/session` -> widget `offline` event",
        goal: Goal::AtMost(1.0),
        baselines: &[
            ("soketi member_removed", "peer_soketi_leave_p50_ms"),
            ("Redis keyspace `del`", "peer_redis_leave_p50_ms"),
            ("Centrifugo leave", "peer_centrifugo_leave_p50_ms"),
        ],
    },
    Row {
        key: "logout_to_widget_offline_p99_ms",
        what: "same, p99",
        goal: Goal::AtMost(5.0),
        baselines: &[],
    },
    Row {
        key: "status_to_10k_widgets_p50_ms",
        what: "10,000 widget streams on one account, each one's receipt",
        goal: Goal::Report,
        baselines: &[(
            "bare axum watch+SSE fan-out p50",
            "bare_axum_10k_widgets_p50_ms",
        )],
    },
    Row {
        key: "status_to_10k_widgets_p99_ms",
        what: "same, p99",
        goal: Goal::AtMost(50.0),
        baselines: &[
            (
                "bare axum watch+SSE fan-out p99",
                "bare_axum_10k_widgets_p99_ms",
            ),
            ("Centrifugo uni_sse", "peer_centrifugo_fanout_10k_p99_ms"),
        ],
    },
    Row {
        key: "status_to_other_device_vs_http_floor",
        what: "status -> other device p50 / the bare axum round trip p50, same run",
        goal: Goal::AtMost(2.0),
        baselines: &[],
    },
    Row {
        key: "status_to_other_device_vs_bare_push_floor",
        what: "status -> other device p50 / bare axum PUT -> event on another connection p50, same run",
        goal: Goal::Report,
        baselines: &[],
    },
    Row {
        key: "status_to_10k_widgets_vs_bare_axum",
        what: "10k-widget fan-out p99 / bare axum watch+SSE p99, same run",
        goal: Goal::AtMost(1.0),
        baselines: &[],
    },
    Row {
        key: "widget_100k_rss_bytes_per_stream",
        what: "100,000 widget streams on one node (from 4 loopback addresses): server resident memory per stream (kernel socket buffers are not in it)",
        goal: Goal::AtMost(4096.0),
        baselines: &[(
            "bare axum watch+SSE server",
            "bare_axum_100k_rss_bytes_per_stream",
        )],
    },
    Row {
        key: "widget_100k_healthz_p99_ms",
        what: "`/healthz` p99 on a fresh connection while the 100,000 streams are held",
        goal: Goal::Report,
        baselines: &[],
    },
    Row {
        key: "status_to_100k_widgets_p50_ms",
        what: "one status change -> each of the 100,000 streams' receipt, p50",
        goal: Goal::Report,
        baselines: &[],
    },
    Row {
        key: "status_to_100k_widgets_p99_ms",
        what: "same, p99",
        goal: Goal::AtMost(1500.0),
        baselines: &[(
            "bare axum watch+SSE fan-out p99",
            "bare_axum_100k_widgets_p99_ms",
        )],
    },
    Row {
        key: "status_to_100k_widgets_vs_bare_axum",
        what: "100k-widget fan-out p99 / bare axum watch+SSE p99 of the same 100,000, same run",
        goal: Goal::AtMost(1.0),
        baselines: &[],
    },
    Row {
        key: "widget_100k_server_cpu_ms_per_change",
        what: "our server's CPU time (user + system) per change of the 100k fan-out",
        goal: Goal::Report,
        baselines: &[],
    },
    Row {
        key: "widget_gzip_bytes",
        what: "`widget.js` and everything it loads, gzip (bytes)",
        goal: Goal::AtMost(12_000.0),
        baselines: &[],
    },
    Row {
        key: "widget_status_to_dom_p50_ms",
        what: "status PUT sent -> the element's `status` attribute changed, headless Chromium",
        goal: Goal::Report,
        baselines: &[],
    },
    Row {
        key: "widget_status_to_dom_p99_ms",
        what: "same, p99 (30 changes)",
        goal: Goal::AtMost(50.0),
        baselines: &[],
    },
    Row {
        key: "widget_first_status_ms",
        what: "script start -> first status shown, loopback",
        goal: Goal::AtMost(300.0),
        baselines: &[],
    },
    Row {
        key: "dashboard_gzip_bytes",
        what: "the dashboard's page, script, stylesheet and heartbeat worker, gzip (bytes)",
        goal: Goal::AtMost(25_000.0),
        baselines: &[],
    },
    Row {
        key: "dashboard_click_to_other_device_p50_ms",
        what: "dashboard status menu click -> `status` event on another device's stream, headless Chromium",
        goal: Goal::Report,
        baselines: &[],
    },
    Row {
        key: "dashboard_click_to_other_device_p99_ms",
        what: "same, p99 (30 clicks)",
        goal: Goal::AtMost(50.0),
        baselines: &[],
    },
    Row {
        key: "expiry_detection_lag_p50_ms",
        what: "lease end -> widget event, 1,000 sessions going silent, staggered",
        goal: Goal::Report,
        baselines: &[("Redis expiry at hz 10", "peer_redis_expiry_lag_p50_ms")],
    },
    Row {
        key: "expiry_detection_lag_p99_ms",
        what: "same, p99",
        goal: Goal::AtMost(20.0),
        baselines: &[(
            "Centrifugo token `exp` -> leave",
            "peer_centrifugo_expiry_lag_p99_ms",
        )],
    },
    Row {
        key: "status_timer_lag_p50_ms",
        what: "a timed status's `until` -> its end's `status` event on the other device, 1,000 timers, staggered",
        goal: Goal::Report,
        baselines: &[],
    },
    Row {
        key: "status_timer_lag_p99_ms",
        what: "same, p99",
        goal: Goal::AtMost(20.0),
        baselines: &[],
    },
    Row {
        key: "idle_lag_p50_ms",
        what: "the moment activity reports imply (report time + `idle_after_ms`) -> the idle change's `status` event, 1,000 times, staggered",
        goal: Goal::Report,
        baselines: &[],
    },
    Row {
        key: "idle_lag_p99_ms",
        what: "same, p99",
        goal: Goal::AtMost(20.0),
        baselines: &[],
    },
    Row {
        key: "heartbeat_throughput_per_s",
        what: "authenticated heartbeats/s over 10k live sessions",
        goal: Goal::Report,
        baselines: &[("bare axum handler", "bare_axum_throughput_per_s")],
    },
    Row {
        key: "heartbeat_throughput_ratio_vs_bare_axum",
        what: "ours / bare axum, same generator, A B A B, median",
        goal: Goal::AtLeast(0.7),
        baselines: &[],
    },
    Row {
        key: "server_rss_bytes_per_session",
        what: "resident memory slope, 0 -> 100k live sessions",
        goal: Goal::Report,
        baselines: &[],
    },
    Row {
        key: "idle_connection_rss_bytes",
        what: "resident memory per idle keep-alive connection, 20k held open",
        goal: Goal::Report,
        baselines: &[],
    },
    Row {
        key: "healthz_p99_ms_20k_idle",
        what: "`/healthz` p99 on a fresh connection while 20k idle connections are held",
        goal: Goal::Report,
        baselines: &[],
    },
    Row {
        key: "core_set_status_p50_us",
        what: "presence-core `set_status` durable enqueue (us)",
        goal: Goal::Report,
        baselines: &[("fsync floor p50", "core_fsync_floor_p50_us")],
    },
    Row {
        key: "core_set_status_p99_us",
        what: "same, p99 (us)",
        goal: Goal::AtMost(5000.0),
        baselines: &[("fsync floor p99", "core_fsync_floor_p99_us")],
    },
    Row {
        key: "core_outbox_coalesce_requests",
        what: "requests sent for 1,000 toggles made offline",
        goal: Goal::Exactly(1.0),
        baselines: &[],
    },
    Row {
        key: "core_fsync_floor_p99_us",
        what: "floor on this disk: a one-row SQLite commit, WAL + synchronous=FULL (us)",
        goal: Goal::Report,
        baselines: &[],
    },
    Row {
        key: "core_fsyncs_per_incoming_event",
        what: "fsyncs per incoming `status`/`chatbox` event (counting SQLite VFS)",
        goal: Goal::Exactly(0.0),
        baselines: &[],
    },
    Row {
        key: "core_background_wakeups_per_h",
        what: "phone wakeups per hour in the background with push (engine timers + renew pushes; paused clock)",
        goal: Goal::AtMost(2.0),
        baselines: &[],
    },
    Row {
        key: "push_renew_lead_ms_p50",
        what: "renew push at the provider double -> the lease's end (worst of fcm, apns, unifiedpush; renew margin 1,000 ms)",
        goal: Goal::AtLeast(500.0),
        baselines: &[],
    },
    Row {
        key: "push_status_to_double_p50_ms",
        what: "status PUT -> the push at the provider double (worst of fcm, apns, unifiedpush; TLS, loopback)",
        goal: Goal::Report,
        baselines: &[],
    },
    Row {
        key: "push_background_pushes_per_h",
        what: "renew pushes per hour to a backgrounded phone at the default timings (run scaled 1/1,000)",
        goal: Goal::AtMost(2.0),
        baselines: &[],
    },
    Row {
        key: "core_active_requests_per_h",
        what: "requests per hour while active (heartbeats and the event stream)",
        goal: Goal::Report,
        baselines: &[],
    },
    Row {
        key: "core_idle_cpu_ms_per_h_active",
        what: "CPU ms per idle hour while active (engine + in-memory fake server, paused clock)",
        goal: Goal::Report,
        baselines: &[],
    },
    Row {
        key: "cluster_status_cross_node_p50_ms",
        what: "cluster of 3 nodes: status PUT on node A -> `status` event on the other device's stream on node B",
        goal: Goal::AtMost(1.5),
        baselines: &[
            ("one node", "status_to_other_device_p50_ms"),
            (
                "Centrifugo, 2 nodes",
                "peer_centrifugo_cluster_change_p50_ms",
            ),
        ],
    },
    Row {
        key: "cluster_status_cross_node_p99_ms",
        what: "same, p99",
        goal: Goal::AtMost(10.0),
        baselines: &[],
    },
    Row {
        key: "cluster_logout_to_widget_offline_p99_ms",
        what: "cluster: `DELETE /v1/session` on node A -> widget `offline` on node B, p99",
        goal: Goal::AtMost(10.0),
        baselines: &[],
    },
    Row {
        key: "cluster_expiry_detection_lag_p99_ms",
        what: "cluster: lease end -> widget event, 1,000 sessions over 3 nodes going silent, staggered, p99",
        goal: Goal::AtMost(20.0),
        baselines: &[],
    },
    Row {
        key: "cluster_status_timer_lag_p99_ms",
        what: "cluster: a timed status set on node A -> its end's `status` event on node B, 1,000 timers, p99",
        goal: Goal::AtMost(20.0),
        baselines: &[],
    },
    Row {
        key: "cluster_expiry_publications_per_lease",
        what: "cluster: `presence_session_expiries_total` summed over the nodes / leases ended",
        goal: Goal::Exactly(1.0),
        baselines: &[],
    },
    Row {
        key: "cluster_heartbeat_throughput_per_s",
        what: "cluster: one node's heartbeats/s, 32 keep-alive connections, one session each",
        goal: Goal::Report,
        baselines: &[("Redis floor", "cluster_redis_heartbeat_floor_per_s")],
    },
    Row {
        key: "cluster_heartbeat_ratio_vs_redis_floor",
        what: "cluster heartbeats/s / `redis-benchmark` of the heartbeat script (same connections, same run)",
        goal: Goal::AtLeast(0.5),
        baselines: &[],
    },
    Row {
        key: "cluster_status_commit_p99_ms",
        what: "cluster: PostgreSQL commit of a status change, p99 (node A's histogram bucket bound, fsync on)",
        goal: Goal::Report,
        baselines: &[],
    },
    Row {
        key: "cluster_kill9_ghost_ms",
        what: "cluster: node C killed with SIGKILL right after its session's heartbeat -> the widget on node A shows `offline` (lease ttl 3,000 ms + the 250 ms publication bound)",
        goal: Goal::AtMost(3250.0),
        baselines: &[(
            "Centrifugo, Redis presence_ttl 60 s",
            "centrifugo_kill9_ghost_ms",
        )],
    },
    Row {
        key: "report_availability_p50_ms",
        what: "embedded (SQLite): availability report (per agent and day, days in UTC) over 90 days of 500 agents, 40 changes per agent per day, p50",
        goal: Goal::Report,
        baselines: &[],
    },
    Row {
        key: "report_availability_p99_ms",
        what: "same, p99",
        goal: Goal::AtMost(1000.0),
        baselines: &[],
    },
    Row {
        key: "report_coverage_p50_ms",
        what: "embedded (SQLite): coverage report (each chat box within opening hours) over 90 days of 500 agents, 40 changes per agent per day, p50",
        goal: Goal::Report,
        baselines: &[],
    },
    Row {
        key: "report_coverage_p99_ms",
        what: "same, p99",
        goal: Goal::AtMost(1000.0),
        baselines: &[],
    },
    Row {
        key: "report_timeline_p50_ms",
        what: "embedded (SQLite): one agent's timeline over 90 days of 500 agents, 40 changes per agent per day, p50",
        goal: Goal::Report,
        baselines: &[],
    },
    Row {
        key: "report_timeline_p99_ms",
        what: "same, p99",
        goal: Goal::AtMost(1000.0),
        baselines: &[],
    },
    Row {
        key: "cluster_report_availability_p50_ms",
        what: "cluster (PostgreSQL): availability report (per agent and day, days in UTC) over 90 days of 500 agents, 40 changes per agent per day, p50",
        goal: Goal::Report,
        baselines: &[],
    },
    Row {
        key: "cluster_report_availability_p99_ms",
        what: "same, p99",
        goal: Goal::AtMost(1000.0),
        baselines: &[],
    },
    Row {
        key: "cluster_report_coverage_p50_ms",
        what: "cluster (PostgreSQL): coverage report (each chat box within opening hours) over 90 days of 500 agents, 40 changes per agent per day, p50",
        goal: Goal::Report,
        baselines: &[],
    },
    Row {
        key: "cluster_report_coverage_p99_ms",
        what: "same, p99",
        goal: Goal::AtMost(1000.0),
        baselines: &[],
    },
    Row {
        key: "cluster_report_timeline_p50_ms",
        what: "cluster (PostgreSQL): one agent's timeline over 90 days of 500 agents, 40 changes per agent per day, p50",
        goal: Goal::Report,
        baselines: &[],
    },
    Row {
        key: "cluster_report_timeline_p99_ms",
        what: "same, p99",
        goal: Goal::AtMost(1000.0),
        baselines: &[],
    },
    Row {
        key: "history_bytes_per_change",
        what: "embedded: bytes on disk per logged availability change (table and its two indexes, SQLite `dbstat`)",
        goal: Goal::Report,
        baselines: &[],
    },
    Row {
        key: "cluster_history_bytes_per_change",
        what: "cluster: bytes on disk per logged availability change (`pg_total_relation_size`)",
        goal: Goal::Report,
        baselines: &[],
    },
    Row {
        key: "webhook_latency_p50_ms",
        what: "embedded: `PUT /v1/me/status` sent -> its `agent.status` webhook received by a loopback endpoint answering at once, p50",
        goal: Goal::Report,
        baselines: &[],
    },
    Row {
        key: "webhook_latency_p99_ms",
        what: "same, p99",
        goal: Goal::AtMost(20.0),
        baselines: &[],
    },
    Row {
        key: "cluster_webhook_latency_p50_ms",
        what: "cluster (PostgreSQL, Redis): status sent -> its webhook received, p50",
        goal: Goal::Report,
        baselines: &[],
    },
    Row {
        key: "cluster_webhook_latency_p99_ms",
        what: "same, p99",
        goal: Goal::AtMost(20.0),
        baselines: &[],
    },
    Row {
        key: "webhook_throughput_one_endpoint_per_s",
        what: "embedded: a backlog drained to one endpoint answering at once (events one at a time, in `seq` order), events per second",
        goal: Goal::Report,
        baselines: &[],
    },
    Row {
        key: "webhook_throughput_100_endpoints_per_s",
        what: "embedded: a backlog drained to 100 endpoints (10 accounts of 10) answering at once, deliveries per second",
        goal: Goal::Report,
        baselines: &[],
    },
    Row {
        key: "status_with_10_webhooks_vs_none",
        what: "status -> other device p50 on an account with 10 webhook endpoints / on one with none (rounds in turn, one server)",
        goal: Goal::AtMost(1.1),
        baselines: &[],
    },
    Row {
        key: "ffi_release_small_bytes",
        what: "`release-small` cdylib size (bytes)",
        goal: Goal::AtMost(6_000_000.0),
        baselines: &[],
    },
];

pub const PEER_ROWS: &[Row] = &[
    Row {
        key: "peer_soketi_change_p50_ms",
        what: "soketi: subscribe -> watcher's member_added",
        goal: Goal::Report,
        baselines: &[],
    },
    Row {
        key: "peer_soketi_leave_p50_ms",
        what: "soketi: unsubscribe -> watcher's member_removed",
        goal: Goal::Report,
        baselines: &[],
    },
    Row {
        key: "ratio_soketi_change",
        what: "our status p50 / soketi member_added p50",
        goal: Goal::AtMost(1.0),
        baselines: &[],
    },
    Row {
        key: "ratio_soketi_leave",
        what: "our logout p50 / soketi member_removed p50",
        goal: Goal::AtMost(1.0),
        baselines: &[],
    },
    Row {
        key: "peer_centrifugo_change_p50_ms",
        what: "Centrifugo: API publish -> the publication on another connection (uni_sse)",
        goal: Goal::Report,
        baselines: &[],
    },
    Row {
        key: "peer_centrifugo_leave_p50_ms",
        what: "Centrifugo: API disconnect of the user -> the widget's leave push",
        goal: Goal::Report,
        baselines: &[],
    },
    Row {
        key: "peer_centrifugo_fanout_10k_p99_ms",
        what: "Centrifugo: 10,000 uni_sse widget streams, API publish -> each receipt, p99",
        goal: Goal::Report,
        baselines: &[],
    },
    Row {
        key: "peer_centrifugo_fanout_server_cpu_ms_per_change",
        what: "Centrifugo: server CPU time (user + system) per change of that fan-out",
        goal: Goal::Report,
        baselines: &[],
    },
    Row {
        key: "peer_centrifugo_expiry_lag_p99_ms",
        what: "Centrifugo: a silent client's token `exp` (whole seconds) -> the widget's leave, p99",
        goal: Goal::Report,
        baselines: &[],
    },
    Row {
        key: "peer_centrifugo_cluster_change_p50_ms",
        what: "Centrifugo, 2 nodes on one Redis: publish to node A -> the connection on node B",
        goal: Goal::Report,
        baselines: &[],
    },
    Row {
        key: "centrifugo_kill9_ghost_ms",
        what: "Centrifugo, 2 nodes: node B killed with SIGKILL right after its client joined -> node A's presence drops it (no leave is sent)",
        goal: Goal::Report,
        baselines: &[("ours", "cluster_kill9_ghost_ms")],
    },
    Row {
        key: "ratio_centrifugo_change",
        what: "our status p50 / Centrifugo publication p50",
        goal: Goal::AtMost(1.0),
        baselines: &[],
    },
    Row {
        key: "ratio_centrifugo_leave",
        what: "our logout p50 / Centrifugo disconnect -> leave p50",
        goal: Goal::AtMost(1.0),
        baselines: &[],
    },
    Row {
        key: "ratio_centrifugo_fanout_10k",
        what: "our 10k fan-out p99 / Centrifugo's",
        goal: Goal::AtMost(1.0),
        baselines: &[],
    },
    Row {
        key: "ratio_centrifugo_fanout_cpu",
        what: "our server CPU per fan-out change / Centrifugo's",
        goal: Goal::AtMost(1.0),
        baselines: &[],
    },
    Row {
        key: "ratio_centrifugo_expiry",
        what: "our expiry lag p99 (after the lease end) / Centrifugo's (after `exp`)",
        goal: Goal::AtMost(1.0),
        baselines: &[],
    },
    Row {
        key: "ratio_centrifugo_cluster_change",
        what: "our cross-node status p50 (3 nodes) / Centrifugo's cross-node publication p50 (2 nodes)",
        goal: Goal::AtMost(1.0),
        baselines: &[],
    },
    Row {
        key: "peer_redis_change_p50_ms",
        what: "Redis: SET -> keyspace notification",
        goal: Goal::Report,
        baselines: &[],
    },
    Row {
        key: "peer_redis_leave_p50_ms",
        what: "Redis: DEL -> keyspace notification",
        goal: Goal::Report,
        baselines: &[],
    },
    Row {
        key: "ratio_redis_change",
        what: "our status p50 / Redis SET notification p50",
        goal: Goal::AtMost(1.0),
        baselines: &[],
    },
    Row {
        key: "ratio_redis_leave",
        what: "our logout p50 / Redis DEL notification p50",
        goal: Goal::AtMost(1.0),
        baselines: &[],
    },
    Row {
        key: "peer_redis_expiry_lag_p50_ms",
        what: "Redis: key TTL end -> `expired` notification (hz 10)",
        goal: Goal::Report,
        baselines: &[],
    },
];

pub const EXTRA_ROWS: &[Row] = &[
    Row {
        key: "status_put_answer_p50_ms",
        what: "status PUT sent -> its own 200 answer (device A)",
        goal: Goal::Report,
        baselines: &[],
    },
    Row {
        key: "heartbeat_rtt_p50_ms",
        what: "one heartbeat round trip, one connection, no load",
        goal: Goal::Report,
        baselines: &[],
    },
    Row {
        key: "bare_axum_rtt_p50_ms",
        what: "the bare axum handler's round trip: the HTTP floor on this machine",
        goal: Goal::Report,
        baselines: &[],
    },
    Row {
        key: "bare_axum_status_to_other_connection_p50_ms",
        what: "bare axum: PUT -> the `watch` frame on another connection's SSE stream, p50 (the floor of a change reaching another device)",
        goal: Goal::Report,
        baselines: &[],
    },
    Row {
        key: "bare_axum_10k_widgets_p99_ms",
        what: "the same 10k-stream fan-out from a bare axum watch channel + SSE handler",
        goal: Goal::Report,
        baselines: &[],
    },
    Row {
        key: "bare_axum_100k_rss_bytes_per_stream",
        what: "the bare axum watch+SSE server's resident memory per stream, same 100,000",
        goal: Goal::Report,
        baselines: &[],
    },
    Row {
        key: "bare_axum_100k_widgets_p99_ms",
        what: "the same 100k-stream fan-out from a bare axum watch channel + SSE handler",
        goal: Goal::Report,
        baselines: &[],
    },
    Row {
        key: "fanout_server_cpu_ms_per_change",
        what: "10k fan-out: our server's CPU time (user + system) per change",
        goal: Goal::Report,
        baselines: &[(
            "bare axum server",
            "bare_axum_fanout_server_cpu_ms_per_change",
        )],
    },
    Row {
        key: "fanout_clients_cpu_ms_per_change",
        what: "10k fan-out: the 10,000 clients' CPU time per change (the bench process)",
        goal: Goal::Report,
        baselines: &[],
    },
    Row {
        key: "bare_axum_throughput_per_s",
        what: "the bare axum handler under the same load",
        goal: Goal::Report,
        baselines: &[],
    },
    Row {
        key: "cluster_redis_heartbeat_floor_per_s",
        what: "`redis-benchmark` EVALSHA of the cluster's heartbeat script, 32 connections: the Redis floor",
        goal: Goal::Report,
        baselines: &[],
    },
    Row {
        key: "durability_status_p50_ms_disk",
        what: "status -> other device p50, data dir on disk (as shipped)",
        goal: Goal::Report,
        baselines: &[],
    },
    Row {
        key: "durability_status_p50_ms_tmpfs",
        what: "same, data dir on tmpfs",
        goal: Goal::Report,
        baselines: &[],
    },
    Row {
        key: "durability_commit_p50_us_disk",
        what: "the status transaction alone, SQLite file on disk (us)",
        goal: Goal::Report,
        baselines: &[],
    },
    Row {
        key: "durability_commit_p50_us_memory",
        what: "the same transaction on an in-memory database (us)",
        goal: Goal::Report,
        baselines: &[],
    },
    Row {
        key: "durability_commit_wal_pages",
        what: "pages (4 KiB WAL frames) one status transaction writes: the agent's row, the status log, the op record, the events and the availability log, with their indexes",
        goal: Goal::Report,
        baselines: &[],
    },
    Row {
        key: "durability_status_p50_ms_memory_estimate",
        what: "status p50 had we kept it in memory only (disk p50 minus the commit difference)",
        goal: Goal::Report,
        baselines: &[],
    },
];

fn fmt_num(v: f64) -> String {
    if v.abs() >= 1000.0 {
        let n = v.round() as i64;
        let digits: Vec<char> = n.abs().to_string().chars().rev().collect();
        let groups: Vec<String> = digits
            .chunks(3)
            .map(|c| c.iter().rev().collect::<String>())
            .collect();
        let out = groups.into_iter().rev().collect::<Vec<_>>().join(",");
        if n < 0 { format!("-{out}") } else { out }
    } else if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

fn goal_text(g: Goal) -> String {
    match g {
        Goal::AtMost(x) => format!("<= {}", fmt_num(x)),
        Goal::AtLeast(x) => format!(">= {}", fmt_num(x)),
        Goal::Exactly(x) => format!("= {}", fmt_num(x)),
        Goal::Report => "report".into(),
    }
}

/// "met", "MISSED", "-" (no goal) or "n/a" (not measured).
pub fn verdict(g: Goal, v: Option<f64>) -> &'static str {
    let Some(v) = v else { return "n/a" };
    let ok = match g {
        Goal::AtMost(x) => v <= x,
        Goal::AtLeast(x) => v >= x,
        Goal::Exactly(x) => (v - x).abs() < 1e-9,
        Goal::Report => return "-",
    };
    if ok { "met" } else { "**MISSED**" }
}

fn table(r: &Report, rows: &[Row], out: &mut String) {
    out.push_str("| key | what | ours | goal | verdict | baseline |\n|---|---|---:|---|---|---|\n");
    for row in rows {
        let v = r.get(row.key);
        let shown = v.map(fmt_num).unwrap_or_else(|| "n/a".into());
        let base: Vec<String> = row
            .baselines
            .iter()
            .map(|(label, k)| {
                format!(
                    "{label}: {}",
                    r.get(k).map(fmt_num).unwrap_or_else(|| "n/a".into())
                )
            })
            .collect();
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} | {} | {} |",
            row.key,
            row.what,
            shown,
            goal_text(row.goal),
            verdict(row.goal, v),
            base.join("; ")
        );
    }
}

/// The generated block of BENCHMARKS.md.
pub fn markdown(r: &Report, meta: &Value) -> String {
    let mut out = String::new();
    let m = &meta["machine"];
    let _ = writeln!(out, "## Results of the last full run\n");
    let _ = writeln!(
        out,
        "- Date: {} (UTC)\n- Command: `{}` (commit `{}`, {} s)\n- Machine: {} x {}, {:.1} GiB \
         memory, Linux {}; load average at start {}\n- Every figure below comes from this one \
         run; raw samples and settings are in `target/bench/report.json` (`details`).\n",
        meta["date"].as_str().unwrap_or("?"),
        meta["command"].as_str().unwrap_or("?"),
        meta["commit"].as_str().unwrap_or("?"),
        meta["elapsed_s"].as_f64().map(|s| s.round()).unwrap_or(0.0),
        m["cores"],
        m["cpu_model"].as_str().unwrap_or("?"),
        m["memory_bytes"].as_f64().unwrap_or(0.0) / (1u64 << 30) as f64,
        m["kernel"].as_str().unwrap_or("?"),
        m["loadavg_start"].as_str().unwrap_or("?"),
    );
    out.push_str("### Our figures (times in ms unless the key says us)\n\n");
    table(r, ROWS, &mut out);
    out.push_str("\n### Peers, same scenarios, same run\n\n");
    table(r, PEER_ROWS, &mut out);
    out.push_str(
        "\nChange for soketi is a join (`pusher:subscribe` sent -> the watcher's \
         `pusher_internal:member_added`); leave is `pusher:unsubscribe` -> `member_removed`. \
         For Redis, change is `SET presence:agent-1 online EX 60` sent -> the watcher's \
         keyspace notification, leave is `DEL`. Ours: change is `PUT /v1/me/status` sent -> \
         the `status` event on the agent's other device; leave is `DELETE /v1/session` sent \
         -> the widget's `offline` event. Each clock starts before the request is written and \
         stops when the read carrying the notification returns.\n",
    );
    out.push_str(
        "\nCentrifugo runs as shipped but for `client.expired_close_delay` (1 ms, default 25 s) \
         and the namespaces the scenarios need; its clients are the same Rust HTTP/SSE client \
         as ours, on its unidirectional SSE transport. Change is an API `publish` sent -> the \
         publication on another connection of the agent; leave is an API `disconnect` of the \
         user sent -> the widget's `leave` push; the fan-out publishes to 10,000 widget \
         streams; expiry is a client whose token `exp` passes (whole seconds; the close comes \
         at the connect's sub-second phase after it) -> the widget's `leave`. What each side \
         guarantees differs: we commit every change to a store (SQLite, or PostgreSQL in a \
         cluster) before answering, so an answered change survives a `kill -9`; Centrifugo \
         keeps state in memory (one node) or in Redis (cluster), and its publications are \
         fire-and-forget (a widget that misses one sees it only through history). Our lease \
         ends are deadlines in milliseconds with a 250 ms publication bound; Centrifugo's \
         connection lifetimes count in whole seconds. When a node dies with `kill -9`, our \
         other nodes publish the lost sessions' lease ends (the ghost lasts at most the lease \
         ttl the bench sets, 3 s, plus 250 ms); Centrifugo sends no leave for the dead node's \
         clients, and they stay in presence until its Redis `presence_ttl` (60 s) runs out.\n",
    );
    out.push_str("\n### Floors, and what durability costs us\n\n");
    table(r, EXTRA_ROWS, &mut out);
    out.push_str(
        "\nThe peers keep presence in memory only; we commit every status change to SQLite \
         (WAL, `synchronous = NORMAL`) before answering, so a `kill -9` loses no acknowledged \
         change. The commit is timed on the server's own `Store`, on disk and on an in-memory \
         database; the memory-only estimate subtracts the difference from our measured p50.\n",
    );
    if !r.notes.is_empty() || !r.failures.is_empty() {
        out.push_str("\n### Notes from this run\n\n");
        for (k, v) in &r.notes {
            let _ = writeln!(out, "- `{k}`: {}", v.as_str().unwrap_or(""));
        }
        for (k, v) in &r.failures {
            let _ = writeln!(
                out,
                "- step `{k}` failed: {}",
                v.as_str().unwrap_or("").lines().next().unwrap_or("")
            );
        }
    }
    out
}

const DEFAULT_HAND_WRITTEN: &str = "\n## Peer tuning, durability and profiles\n\n\
(Hand-written; the generator keeps this part.)\n";

/// Replaces the generated block of `path` (creating the file when missing), keeping the
/// rest.
pub fn write_markdown(path: &Path, generated: &str) -> Result<(), String> {
    let existing = std::fs::read_to_string(path).unwrap_or_default();
    let block = format!("{BEGIN}\n\n{generated}\n{END}");
    let text = match (existing.find(BEGIN), existing.find(END)) {
        (Some(b), Some(e)) if e > b => {
            format!("{}{}{}", &existing[..b], block, &existing[e + END.len()..])
        }
        _ if existing.trim().is_empty() => {
            format!("# Benchmarks\n\n{block}\n{DEFAULT_HAND_WRITTEN}")
        }
        _ => format!("{}\n\n{block}\n", existing.trim_end()),
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    }
    std::fs::write(path, text).map_err(|e| e.to_string())
}
