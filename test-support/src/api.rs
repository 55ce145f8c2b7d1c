//! A thin HTTP client of the contract: every call returns the status, the headers and the JSON
//! body (or the text as a string, or Null), plus the calls most tests start with (an account,
//! agents, logins, a status change).

use std::time::Duration;

use serde_json::{Value, json};

use crate::server::ADMIN_TOKEN;
use crate::sse::Sse;

/// A client with a generous timeout, for requests that must be answered.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

pub fn new_op_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

#[derive(Clone)]
pub struct Api {
    pub url: String,
    pub client: reqwest::Client,
}

pub struct Resp {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

/// An account made through `POST /v1/accounts`: its owner is `owner@<slug>.test` with
/// password `pw-owner-secret`.
pub struct Account {
    pub slug: String,
    pub id: String,
    pub email: String,
    pub password: String,
    pub widget_key: String,
    pub owner_id: String,
    /// The owner's token from a login on device `owner-dev` by [`Api::create_account`];
    /// empty after [`Api::create_account_without_login`].
    pub owner_token: String,
}

#[derive(Debug, Clone)]
pub struct Session {
    pub token: String,
    pub session_id: String,
    pub agent_id: String,
    pub login: Value,
}

impl Session {
    pub fn from_login(v: &Value) -> Session {
        Session {
            token: v["token"].as_str().unwrap_or_default().to_owned(),
            session_id: v["session_id"].as_str().unwrap_or_default().to_owned(),
            agent_id: v["agent"]["id"].as_str().unwrap_or_default().to_owned(),
            login: v.clone(),
        }
    }
}

/// Reads a response the way [`Api::call`] does: JSON body, or the text as a string, or Null.
pub async fn read_resp(resp: reqwest::Response) -> Resp {
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let bytes = resp.bytes().await.expect("body");
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
    };
    Resp {
        status,
        headers,
        body,
    }
}

impl Resp {
    /// The error code of an error body.
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }

    /// Asserts an error answer: the HTTP status, the code, and a body that is exactly
    /// `{"error": {"code": string, "detail": non-empty string}}`. Returns the detail.
    #[track_caller]
    pub fn assert_error(&self, status: u16, code: &str) -> String {
        assert_eq!(self.status, status, "status (body {})", self.body);
        let outer = self
            .body
            .as_object()
            .unwrap_or_else(|| panic!("error body is a JSON object: {}", self.body));
        assert_eq!(outer.len(), 1, "error body has only `error`: {}", self.body);
        let inner = self.body["error"]
            .as_object()
            .unwrap_or_else(|| panic!("`error` is an object: {}", self.body));
        assert_eq!(
            inner.len(),
            2,
            "`error` has only code and detail: {}",
            self.body
        );
        assert_eq!(
            self.body["error"]["code"].as_str(),
            Some(code),
            "code: {}",
            self.body
        );
        let detail = self.body["error"]["detail"]
            .as_str()
            .unwrap_or_else(|| panic!("detail is a string: {}", self.body));
        assert!(
            !detail.trim().is_empty(),
            "detail is not empty: {}",
            self.body
        );
        detail.to_owned()
    }

    /// A header as text, if present.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    }
}

impl Api {
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Resp {
        let mut req = self.request(method, path);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        self.send(req).await
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Resp {
        self.call(reqwest::Method::GET, path, token, None).await
    }
    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Resp {
        self.call(reqwest::Method::POST, path, token, Some(body))
            .await
    }
    pub async fn put(&self, path: &str, token: Option<&str>, body: Value) -> Resp {
        self.call(reqwest::Method::PUT, path, token, Some(body))
            .await
    }
    pub async fn patch(&self, path: &str, token: Option<&str>, body: Value) -> Resp {
        self.call(reqwest::Method::PATCH, path, token, Some(body))
            .await
    }
    pub async fn delete(&self, path: &str, token: Option<&str>) -> Resp {
        self.call(reqwest::Method::DELETE, path, token, None).await
    }

    /// A request builder for `path`, for what the contract client does not cover (raw bodies,
    /// other content types, extra headers).
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client.request(method, format!("{}{}", self.url, path))
    }

    /// Sends a prepared request and reads the whole answer (not for open event streams).
    pub async fn send(&self, req: reqwest::RequestBuilder) -> Resp {
        read_resp(req.send().await.expect("request reaches the server")).await
    }

    /// Creates an account (see [`Account`]) with nobody logged in: the only sessions are the
    /// ones the test opens.
    pub async fn create_account_without_login(&self, slug: &str) -> Account {
        let email = format!("owner@{slug}.test");
        let password = "pw-owner-secret".to_owned();
        let r = self
            .post(
                "/v1/accounts",
                Some(ADMIN_TOKEN),
                json!({"name": format!("{slug} Inc"), "slug": slug,
                       "owner": {"name": "Owner", "email": email, "password": password}}),
            )
            .await;
        assert_eq!(r.status, 201, "create account: {}", r.body);
        Account {
            slug: slug.to_owned(),
            id: r.body["account"]["id"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            email,
            password,
            widget_key: r.body["account"]["widget_key"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            owner_id: r.body["owner"]["id"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            owner_token: String::new(),
        }
    }

    /// Creates an account (see [`Account`]) and logs its owner in on device `owner-dev`.
    pub async fn create_account(&self, slug: &str) -> Account {
        let mut acc = self.create_account_without_login(slug).await;
        let owner = self
            .login(slug, &acc.email, &acc.password, "owner-dev")
            .await;
        acc.owner_token = owner.token;
        acc
    }

    /// Logs in with a device id; panics unless it succeeds.
    pub async fn login(&self, slug: &str, email: &str, password: &str, device: &str) -> Session {
        let r = self
            .login_raw(slug, email, password, device, Value::Null)
            .await;
        assert_eq!(r.status, 200, "login: {}", r.body);
        Session::from_login(&r.body)
    }

    pub async fn login_raw(
        &self,
        slug: &str,
        email: &str,
        password: &str,
        device: &str,
        push: Value,
    ) -> Resp {
        self.post(
            "/v1/login",
            None,
            json!({"account": slug, "email": email, "password": password,
                   "device": {"id": device, "platform": "desktop", "name": device,
                              "app_version": "1.0.0"},
                   "push": push}),
        )
        .await
    }

    /// Logs `acc`'s owner in from a plain web client (a device that is not an engine);
    /// returns the token.
    pub async fn login_owner(&self, acc: &Account, device: &str) -> String {
        let r = self
            .post(
                "/v1/login",
                None,
                json!({"account": acc.slug, "email": acc.email, "password": acc.password,
                       "device": {"id": device, "platform": "web", "name": "raw",
                                  "app_version": "0"}}),
            )
            .await;
        assert_eq!(r.status, 200, "login: {}", r.body);
        r.body["token"].as_str().expect("token").to_owned()
    }

    /// Adds an agent (password `pw-<name>-secret`) through the admin API.
    pub async fn add_agent(&self, acc: &Account, name: &str, groups: &[&str]) -> String {
        self.add_agent_as(acc, name, groups, "agent").await
    }

    /// [`Api::add_agent`] with a role (`agent`, `admin` or `owner`).
    pub async fn add_agent_as(
        &self,
        acc: &Account,
        name: &str,
        groups: &[&str],
        role: &str,
    ) -> String {
        let r = self
            .post(
                "/v1/admin/agents",
                Some(&acc.owner_token),
                json!({"name": name, "email": format!("{name}@{}.test", acc.slug),
                       "password": format!("pw-{name}-secret"), "groups": groups, "role": role}),
            )
            .await;
        assert_eq!(r.status, 201, "add agent: {}", r.body);
        r.body["id"].as_str().unwrap_or_default().to_owned()
    }

    pub async fn login_agent(&self, acc: &Account, name: &str, device: &str) -> Session {
        self.login(
            &acc.slug,
            &format!("{name}@{}.test", acc.slug),
            &format!("pw-{name}-secret"),
            device,
        )
        .await
    }

    pub async fn set_status(&self, s: &Session, status: &str) -> Resp {
        self.put(
            "/v1/me/status",
            Some(&s.token),
            json!({"status": status, "op_id": new_op_id()}),
        )
        .await
    }

    /// `GET /v1/me`; panics unless it answers 200.
    pub async fn me(&self, token: &str) -> Value {
        let r = self.get("/v1/me", Some(token)).await;
        assert_eq!(r.status, 200, "me: {}", r.body);
        r.body
    }

    /// The widget's view of `acc`; panics unless it answers 200.
    pub async fn widget(&self, acc: &Account) -> Value {
        let r = self
            .get(&format!("/v1/widget/{}/status", acc.widget_key), None)
            .await;
        assert_eq!(r.status, 200, "widget: {}", r.body);
        r.body
    }

    pub async fn put_groups(&self, acc: &Account, groups: &[(&str, &str)]) {
        let body: Vec<Value> = groups
            .iter()
            .map(|(k, n)| json!({"key": k, "name": n}))
            .collect();
        let r = self
            .put(
                "/v1/admin/groups",
                Some(&acc.owner_token),
                Value::Array(body),
            )
            .await;
        assert_eq!(r.status, 200, "groups: {}", r.body);
    }

    /// Opens an event stream; panics unless it answers 200.
    pub async fn sse(&self, path: &str, token: Option<&str>) -> Sse {
        let mut req = self.request(reqwest::Method::GET, path);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let (status, _, sse) = self.open_stream(req).await;
        assert_eq!(status, 200, "stream status");
        sse
    }

    /// Opens an event stream with a prepared request; returns its status, headers and reader.
    pub async fn open_stream(
        &self,
        req: reqwest::RequestBuilder,
    ) -> (u16, reqwest::header::HeaderMap, Sse) {
        let resp = req
            .timeout(Duration::from_secs(3600))
            .send()
            .await
            .expect("stream opens");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        (status, headers, Sse::new(resp))
    }
}
