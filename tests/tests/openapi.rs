//! The OpenAPI document (`GET /v1/openapi.json`) against the real server: every documented
//! route and method is answered (not the unknown-route `404` nor `405`), every other method
//! on a documented path is `405`, and the answers of real calls, with every kind of
//! credential, match the schema the document gives for their status (and the requests the
//! tests send match the documented request bodies). Runs on both backends
//! (`PRESENCE_TEST_BACKEND=cluster`).

use presence_test_support::*;
use reqwest::Method;
use serde_json::{Value, json};

const METHODS: [&str; 5] = ["get", "put", "post", "delete", "patch"];

async fn document(api: &Api) -> Value {
    let r = api.get("/v1/openapi.json", None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/json")
    );
    assert_eq!(r.body["openapi"], "3.1.0");
    r.body
}

/// Checks `value` against `schema`, a schema of the document whose `$ref`s point into it.
#[track_caller]
fn check(doc: &Value, schema: &Value, value: &Value, what: &str) {
    let mut root = schema.clone();
    if let Value::Object(m) = &mut root {
        m.insert("components".into(), doc["components"].clone());
    }
    let validator = jsonschema::draft202012::new(&root)
        .unwrap_or_else(|e| panic!("{what}: the documented schema compiles: {e}"));
    let errors: Vec<String> = validator
        .iter_errors(value)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{what}: the answer contradicts the document: {errors:?}\nvalue: {value}\nschema: {schema}"
    );
}

/// The documented operation of `method` on the path template `path`.
fn operation<'a>(doc: &'a Value, method: &str, path: &str) -> &'a Value {
    let op = &doc["paths"][path][method];
    assert!(op.is_object(), "{method} {path} is documented");
    op
}

/// A real call, checked: a request body the server took against the documented one, its status among the
/// documented ones, its body against the schema documented for that status.
struct Checked<'a> {
    api: &'a Api,
    doc: &'a Value,
}

impl Checked<'_> {
    async fn call(
        &self,
        method: &str,
        template: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> api::Resp {
        let op = operation(self.doc, method, template);
        let what = format!("{} {path}", method.to_uppercase());
        let request = body.clone();
        let m = Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
        let mut req = self.api.request(m, path);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = self.api.send(req).await;
        // A body the server took is one the document allows (the refused ones are wrong on
        // purpose).
        if let Some(b) = request.filter(|_| r.status < 300) {
            let schema = &op["requestBody"]["content"]["application/json"]["schema"];
            assert!(schema.is_object(), "{what}: a request body is documented");
            check(self.doc, schema, &b, &format!("{what} request"));
        }
        let status = r.status.to_string();
        let answer = &op["responses"][&status];
        assert!(
            answer.is_object(),
            "{what}: status {status} is documented ({})",
            r.body
        );
        match answer["content"].as_object() {
            Some(content) => {
                let (ctype, media) = content.iter().next().expect("a content type");
                let got = r.header("content-type").unwrap_or_default();
                assert!(got.starts_with(ctype.as_str()), "{what}: {got} is {ctype}");
                if ctype == "application/json" {
                    check(self.doc, &media["schema"], &r.body, &what);
                }
            }
            None => assert_eq!(r.body, Value::Null, "{what}: no body is documented"),
        }
        r
    }
}

fn device(id: &str) -> Value {
    json!({"id": id, "platform": "web", "name": id, "app_version": "1"})
}

#[tokio::test]
async fn every_documented_route_is_answered_and_no_other_method_is() {
    let srv = TestServer::start().await;
    let api = srv.api();
    let doc = document(&api).await;
    let paths = doc["paths"].as_object().expect("paths");
    assert!(paths.len() > 20, "the document lists the API");
    for (template, item) in paths {
        // Path parameters get a value no route knows: the handler answers, with its own 404.
        let path = template
            .split('/')
            .map(|s| if s.starts_with('{') { "nobody" } else { s })
            .collect::<Vec<_>>()
            .join("/");
        for method in METHODS {
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
            let r = api.send(api.request(m, &path)).await;
            let documented = item.get(method).is_some();
            if documented {
                assert_ne!(r.status, 405, "{method} {path}: documented, so answered");
                let unknown_route = r.status == 404
                    && r.body["error"]["detail"].as_str() == Some("route not found");
                assert!(!unknown_route, "{method} {path}: documented, so routed");
            } else {
                assert_eq!(r.status, 405, "{method} {path}: not documented: {}", r.body);
            }
        }
    }
}

#[tokio::test]
async fn real_answers_match_the_documented_schemas_for_every_credential() {
    let srv = TestServer::start().await;
    let api = srv.api();
    let doc = document(&api).await;
    let c = Checked {
        api: &api,
        doc: &doc,
    };

    // The operator.
    let created = c
        .call(
            "post",
            "/v1/accounts",
            "/v1/accounts",
            Some(ADMIN_TOKEN),
            Some(json!({"name": "Docs", "slug": "docs",
                        "owner": {"name": "Owner", "email": "owner@docs.test",
                                  "password": "owner-password"}})),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let widget_key = created.body["account"]["widget_key"].as_str().unwrap();
    c.call(
        "post",
        "/v1/accounts",
        "/v1/accounts",
        Some("wrong"),
        Some(json!({})),
    )
    .await
    .assert_error(401, "unauthorized");

    // Anyone: login, the widget, operations.
    let login = c
        .call(
            "post",
            "/v1/login",
            "/v1/login",
            None,
            Some(json!({"account": "docs", "email": "owner@docs.test",
                        "password": "owner-password", "device": device("owner-dev")})),
        )
        .await;
    assert_eq!(login.status, 200, "{}", login.body);
    let owner = login.body["token"].as_str().unwrap().to_owned();
    c.call(
        "post",
        "/v1/login",
        "/v1/login",
        None,
        Some(json!({"account": "docs", "email": "owner@docs.test",
                    "password": "wrong-password", "device": device("owner-dev")})),
    )
    .await
    .assert_error(401, "invalid_credentials");
    let widget = format!("/v1/widget/{widget_key}/status");
    let w = c
        .call("get", "/v1/widget/{widget_key}/status", &widget, None, None)
        .await;
    assert_eq!(w.status, 200);
    c.call(
        "get",
        "/v1/widget/{widget_key}/status",
        "/v1/widget/wk_nobody/status",
        None,
        None,
    )
    .await
    .assert_error(404, "not_found");
    assert_eq!(
        c.call("get", "/healthz", "/healthz", None, None)
            .await
            .status,
        200
    );

    // The owner's session.
    let o = Some(owner.as_str());
    let agent = c
        .call(
            "post",
            "/v1/admin/agents",
            "/v1/admin/agents",
            o,
            Some(
                json!({"name": "Ann", "email": "ann@docs.test", "password": "ann-password",
                        "groups": [], "role": "agent"}),
            ),
        )
        .await;
    assert_eq!(agent.status, 201, "{}", agent.body);
    let ann = agent.body["id"].as_str().unwrap().to_owned();
    let groups = c
        .call(
            "put",
            "/v1/admin/groups",
            "/v1/admin/groups",
            o,
            Some(json!([{"key": "sales", "name": "Sales"}])),
        )
        .await;
    assert_eq!(groups.status, 200);
    let ann_path = format!("/v1/admin/agents/{ann}");
    let patched = c
        .call(
            "patch",
            "/v1/admin/agents/{id}",
            &ann_path,
            o,
            Some(json!({"groups": ["sales"]})),
        )
        .await;
    assert_eq!(patched.status, 200);
    let cs = c
        .call(
            "put",
            "/v1/admin/custom-statuses",
            "/v1/admin/custom-statuses",
            o,
            Some(
                json!([{"id": "lunch", "label": "Lunch", "emoji": null, "base": "busy",
                         "default_duration_ms": 3_600_000}]),
            ),
        )
        .await;
    assert_eq!(cs.status, 200);
    let oh = c
        .call(
            "put",
            "/v1/admin/opening-hours",
            "/v1/admin/opening-hours",
            o,
            Some(json!({"enabled": true, "timezone": "Europe/Prague",
                        "days": {"mon": [["09:00", "17:30"]], "sun": []},
                        "exceptions": [{"date": "2026-12-24", "ranges": []}]})),
        )
        .await;
    assert_eq!(oh.status, 200, "{}", oh.body);
    let settings = c
        .call(
            "put",
            "/v1/admin/settings",
            "/v1/admin/settings",
            o,
            Some(json!({"busy_message": "Back soon", "idle_after_ms": 60_000})),
        )
        .await;
    assert_eq!(settings.status, 200, "{}", settings.body);
    let key = c
        .call(
            "post",
            "/v1/admin/api-keys",
            "/v1/admin/api-keys",
            o,
            Some(json!({"name": "backend"})),
        )
        .await;
    assert_eq!(key.status, 201);
    let pk = key.body["key"].as_str().unwrap().to_owned();
    assert_eq!(
        c.call("get", "/v1/admin/api-keys", "/v1/admin/api-keys", o, None)
            .await
            .status,
        200
    );
    let sign_in = c
        .call(
            "put",
            "/v1/admin/sign-in",
            "/v1/admin/sign-in",
            o,
            Some(
                json!({"jwt": {"issuer": "https://id.docs.test", "audience": "presence",
                                "hs256_secret": "a-shared-secret-of-at-least-32-bytes!"},
                        "password_login": true, "provision": false}),
            ),
        )
        .await;
    assert_eq!(sign_in.status, 200, "{}", sign_in.body);
    let account = c
        .call("get", "/v1/admin/account", "/v1/admin/account", o, None)
        .await;
    assert_eq!(account.status, 200);
    c.call(
        "delete",
        "/v1/admin/agents/{id}",
        "/v1/admin/agents/nobody",
        o,
        None,
    )
    .await
    .assert_error(404, "not_found");

    // An API key.
    let k = Some(pk.as_str());
    let opened = c
        .call(
            "post",
            "/v1/admin/sessions",
            "/v1/admin/sessions",
            k,
            Some(json!({"agent": {"id": ann}, "device": device("ann-dev")})),
        )
        .await;
    assert_eq!(opened.status, 200, "{}", opened.body);
    let ann_token = opened.body["token"].as_str().unwrap().to_owned();
    let set = c
        .call(
            "put",
            "/v1/admin/agents/{id}/status",
            &format!("{ann_path}/status"),
            k,
            Some(json!({"status": "busy", "custom_status": "lunch", "note": "back at 2"})),
        )
        .await;
    assert_eq!(set.status, 200, "{}", set.body);
    let log = c
        .call(
            "get",
            "/v1/admin/agents/{id}/status-log",
            &format!("{ann_path}/status-log?limit=10"),
            k,
            None,
        )
        .await;
    assert_eq!(log.status, 200, "{}", log.body);
    c.call("get", "/v1/admin/api-keys", "/v1/admin/api-keys", k, None)
        .await
        .assert_error(403, "forbidden");

    // The agent's session.
    let a = Some(ann_token.as_str());
    let status = c
        .call(
            "put",
            "/v1/me/status",
            "/v1/me/status",
            a,
            Some(
                json!({"status": "online", "op_id": new_op_id(), "duration_ms": 60_000,
                        "then": "busy"}),
            ),
        )
        .await;
    assert_eq!(status.status, 200, "{}", status.body);
    for body in [None, Some(json!({"mode": "active", "idle_ms": 1000}))] {
        let hb = c
            .call(
                "post",
                "/v1/session/heartbeat",
                "/v1/session/heartbeat",
                a,
                body,
            )
            .await;
        assert_eq!(hb.status, 200, "{}", hb.body);
    }
    let me = c.call("get", "/v1/me", "/v1/me", a, None).await;
    assert_eq!(me.status, 200);
    let my_log = c
        .call("get", "/v1/me/status-log", "/v1/me/status-log", a, None)
        .await;
    assert_eq!(my_log.status, 200);
    c.call("get", "/v1/admin/account", "/v1/admin/account", a, None)
        .await
        .assert_error(403, "forbidden");
    c.call(
        "put",
        "/v1/me/status",
        "/v1/me/status",
        a,
        Some(json!({"status": "online", "op_id": new_op_id(), "duration_ms": 5})),
    )
    .await
    .assert_error(422, "invalid_field");
    let gone = c
        .call(
            "delete",
            "/v1/me/sessions/{session_id}",
            "/v1/me/sessions/nobody",
            a,
            None,
        )
        .await;
    gone.assert_error(404, "not_found");
    assert_eq!(
        c.call("delete", "/v1/session", "/v1/session", a, None)
            .await
            .status,
        204
    );
    c.call("get", "/v1/me", "/v1/me", a, None)
        .await
        .assert_error(401, "session_expired");
}
