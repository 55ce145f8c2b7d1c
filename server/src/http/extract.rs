//! Extractors that speak the contract's errors: bearer auth, JSON bodies, the client's IP.

use std::net::{IpAddr, SocketAddr};

use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::{StatusCode, header, request::Parts};
use serde::de::DeserializeOwned;

use super::AppState;
use super::strict_json::Strict;
use crate::auth::TokenHash;
use crate::backend::Principal;
use crate::error::ApiError;

/// The SHA-256 of the `Authorization: Bearer <token>` session token (missing, malformed, or
/// not the shape of a token the server makes: `401 unauthorized`, with no store asked).
/// Nothing past this extractor sees the raw token.
pub struct Bearer(pub TokenHash);

impl<S: Send + Sync> FromRequestParts<S> for Bearer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let token = bearer(&parts.headers)?;
        if !crate::auth::is_token_shaped(token) {
            return Err(ApiError::unauthorized());
        }
        Ok(Bearer(crate::auth::token_hash(token)))
    }
}

/// The session behind `Authorization: Bearer <token>`.
pub struct Auth(pub Principal);

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Bearer(token) = Bearer::from_request_parts(parts, state).await?;
        state
            .ops
            .authenticate(&token)
            .await
            .map(Auth)
            .map_err(ApiError::from)
    }
}

/// An owner's or admin's session, or an API key of the account (acting as an admin:
/// `crate::ops::api_keys`); `403 forbidden` for an agent's session.
pub struct Admin(pub Principal);

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer(&parts.headers)?;
        if crate::ops::api_keys::is_key(token) {
            return Ok(Admin(state.ops.authenticate_key(token).await?));
        }
        AdminSession::from_request_parts(parts, state)
            .await
            .map(|AdminSession(p)| Admin(p))
    }
}

/// Like [`Admin`], but a signed-in owner or admin only: an API key gets `403 forbidden`
/// (keys neither manage keys nor change how the account signs in).
pub struct AdminSession(pub Principal);

impl FromRequestParts<AppState> for AdminSession {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer(&parts.headers)?;
        if crate::ops::api_keys::is_key(token) {
            // An unknown or revoked key is `401` here as everywhere; a live one is not enough.
            state.ops.authenticate_key(token).await?;
            return Err(ApiError::forbidden(
                "an API key cannot manage API keys or sign-in settings",
            ));
        }
        let Auth(p) = Auth::from_request_parts(parts, state).await?;
        if p.role.is_admin() {
            Ok(AdminSession(p))
        } else {
            Err(ApiError::forbidden(
                "administration needs the owner or admin role",
            ))
        }
    }
}

/// The server operator, proven by `--admin-token`.
pub struct Operator;

impl FromRequestParts<AppState> for Operator {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Some(expected) = &state.admin_token else {
            return Err(ApiError::forbidden(
                "account creation is disabled: start the server with --admin-token",
            ));
        };
        let given = bearer(&parts.headers)?.to_owned();
        // Wrong tokens count like failed logins: in a window of the client address's own for
        // the operator route (so one address cannot lock others out), and in its address
        // window.
        let Ok(ClientIp(ip)) = ClientIp::from_request_parts(parts, state).await;
        let key = format!("operator@{}", ip.map(|i| i.to_string()).unwrap_or_default());
        let attempt = state
            .limiter
            .take("", &key, None, ip)
            .await
            .map_err(super::session::refused)?;
        if crate::auth::secure_eq(given.as_bytes(), expected.as_bytes()) {
            Ok(Operator)
        } else {
            attempt.failed();
            Err(ApiError::unauthorized())
        }
    }
}

/// The token of `Authorization: Bearer <token>`. Missing or malformed: `401 unauthorized`;
/// more than one `Authorization` header: `400 bad_request` (which one would count is
/// ambiguous, and proxies disagree about it).
pub fn bearer(headers: &axum::http::HeaderMap) -> Result<&str, ApiError> {
    let mut all = headers.get_all(header::AUTHORIZATION).iter();
    let Some(v) = all.next() else {
        return Err(ApiError::unauthorized());
    };
    if all.next().is_some() {
        return Err(ApiError::bad_request(
            "send one Authorization header, not several",
        ));
    }
    let v = v.to_str().map_err(|_| ApiError::unauthorized())?;
    let (scheme, token) = v.split_once(' ').ok_or_else(ApiError::unauthorized)?;
    let token = token.trim();
    if scheme.eq_ignore_ascii_case("bearer") && !token.is_empty() {
        Ok(token)
    } else {
        Err(ApiError::unauthorized())
    }
}

/// The one parameter of a path like `/v1/admin/agents/{id}`. A parameter that is not valid
/// UTF-8 once percent-decoded answers `400 bad_request` in the contract's JSON shape.
pub struct PathParam(pub String);

impl<S: Send + Sync> FromRequestParts<S> for PathParam {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Path::<String>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(PathParam(v)),
            Err(rej) => Err(ApiError::bad_request(format!("bad path parameter: {rej}"))),
        }
    }
}

/// The two parameters of a path like `/v1/admin/webhooks/{id}/deliveries/{event_id}/retry`,
/// read like [`PathParam`].
pub struct PathParams2(pub String, pub String);

impl<S: Send + Sync> FromRequestParts<S> for PathParams2 {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Path::<(String, String)>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path((a, b))) => Ok(PathParams2(a, b)),
            Err(rej) => Err(ApiError::bad_request(format!("bad path parameter: {rej}"))),
        }
    }
}

/// A status-log read's query string: a value that is not an integer is `422` naming it; an
/// unknown parameter is ignored.
impl<S: Send + Sync> FromRequestParts<S> for LogParams {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let mut p = LogParams::default();
        for pair in parts.uri.query().unwrap_or("").split('&') {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let slot = match key {
                "from" => &mut p.from,
                "to" => &mut p.to,
                "limit" => &mut p.limit,
                "after" => &mut p.after,
                _ => continue,
            };
            let v = value
                .parse()
                .map_err(|_| ApiError::invalid_field(key, "must be an integer"))?;
            *slot = Some(v);
        }
        Ok(p)
    }
}

pub use crate::ops::LogParams;

/// The client's address: the peer's, or, when the peer is a trusted proxy
/// (`--trusted-proxy`), the rightmost `X-Forwarded-For` entry not in a trusted range
/// ([`client_ip`]). `None` when the server was started without connect info.
pub struct ClientIp(pub Option<IpAddr>);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        let forwarded = parts.headers.get_all("x-forwarded-for");
        Ok(ClientIp(peer.map(|peer| {
            client_ip(peer, forwarded.iter(), &state.trusted_proxies)
        })))
    }
}

/// Whom a request comes from. A peer outside `trusted` is the client, whatever it says. A
/// trusted peer's `X-Forwarded-For` (every such header, in order, comma-separated) is read
/// from the right: the first entry outside the trusted ranges is the client (entries to its
/// left are whatever the client wrote, so never believed). If every entry is trusted, the
/// leftmost is; an entry that is not an address ends the walk at the last trusted hop.
pub fn client_ip<'a>(
    peer: IpAddr,
    forwarded: impl DoubleEndedIterator<Item = &'a axum::http::HeaderValue>,
    trusted: &[ipnet::IpNet],
) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let mut client = peer;
    for value in forwarded.rev() {
        let Ok(value) = value.to_str() else {
            return client;
        };
        for entry in value.rsplit(',') {
            let Ok(ip) = entry.trim().parse::<IpAddr>() else {
                return client;
            };
            client = ip;
            if !is_trusted(&ip) {
                return ip;
            }
        }
    }
    client
}

/// A JSON body. Wrong content type: 415; not JSON: 400; wrong shape: 422 naming the field;
/// too big: 413.
pub struct JsonBody<T>(pub T);

/// A JSON body that may be empty (then `T::default()`).
pub struct OptionalJsonBody<T>(pub T);

async fn read_body<S: Send + Sync>(req: Request, state: &S) -> Result<(bool, Bytes), ApiError> {
    let is_json = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|ct| {
            let mime = ct
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            mime == "application/json" || mime.ends_with("+json")
        });
    let bytes = Bytes::from_request(req, state).await.map_err(|rej| {
        if rej.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                presence_protocol::ErrorCode::PayloadTooLarge,
                format!("request body is larger than {} bytes", super::BODY_LIMIT),
            )
        } else {
            ApiError::bad_request(format!("could not read the request body: {rej}"))
        }
    })?;
    Ok((is_json.unwrap_or(false), bytes))
}

/// Two steps so every shape problem is a 422: serde_json reports some wrong shapes (`null`
/// for an enum) as syntax errors when deserialising straight from bytes. The second step is
/// [`Strict`]: an array is refused wherever an object is wanted, at any depth.
fn parse<T: DeserializeOwned>(bytes: &[u8], want: Shape) -> Result<T, ApiError> {
    let value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request(format!("request body is not valid JSON: {e}")))?;
    // serde accepts a JSON array for a struct (fields by position); the contract does not.
    // The body itself is checked here; what is inside it, by `Strict`.
    match (want, &value) {
        (Shape::Object, serde_json::Value::Object(_))
        | (Shape::List, serde_json::Value::Array(_)) => {}
        (Shape::Object, _) => {
            return Err(ApiError::invalid_field("body", "expected a JSON object"));
        }
        (Shape::List, _) => return Err(ApiError::invalid_field("body", "expected a JSON array")),
    }
    serde_path_to_error::deserialize(Strict::new(value)).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        {
            let msg = inner.to_string();
            // serde reports a missing field at its parent's path; name the field itself.
            let field = match msg
                .strip_prefix("missing field `")
                .and_then(|r| r.split('`').next())
            {
                Some(f) if path == "." => f.to_owned(),
                Some(f) => format!("{path}.{f}"),
                None if path == "." => "body".to_owned(),
                None => path,
            };
            let msg = msg.split(" at line ").next().unwrap_or(&msg).to_owned();
            ApiError::invalid_field(&field, msg)
        }
    })
}

#[derive(Clone, Copy)]
enum Shape {
    Object,
    List,
}

fn unsupported_media_type() -> ApiError {
    ApiError::new(
        presence_protocol::ErrorCode::UnsupportedMediaType,
        "send the body as Content-Type: application/json",
    )
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let (is_json, bytes) = read_body(req, state).await?;
        if !is_json {
            return Err(unsupported_media_type());
        }
        parse(&bytes, Shape::Object).map(JsonBody)
    }
}

/// A JSON array body (`PUT /v1/admin/groups`); otherwise like [`JsonBody`].
pub struct JsonListBody<T>(pub Vec<T>);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonListBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let (is_json, bytes) = read_body(req, state).await?;
        if !is_json {
            return Err(unsupported_media_type());
        }
        parse(&bytes, Shape::List).map(JsonListBody)
    }
}

impl<T: DeserializeOwned + Default, S: Send + Sync> FromRequest<S> for OptionalJsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        // The common heartbeat has no body at all: skip collecting one.
        let h = req.headers();
        let no_body = h.get(header::TRANSFER_ENCODING).is_none()
            && h.get(header::CONTENT_LENGTH)
                .is_none_or(|v| v.as_bytes() == b"0");
        if no_body {
            return Ok(OptionalJsonBody(T::default()));
        }
        let (is_json, bytes) = read_body(req, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJsonBody(T::default()));
        }
        if !is_json {
            return Err(unsupported_media_type());
        }
        parse(&bytes, Shape::Object).map(OptionalJsonBody)
    }
}

#[cfg(test)]
mod tests {
    use presence_protocol::{ErrorCode, LoginRequest, OpeningHours};

    use super::*;

    #[test]
    fn the_client_is_the_rightmost_forwarded_address_outside_the_trusted_ranges() {
        let nets: Vec<ipnet::IpNet> =
            vec!["10.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()];
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let hv = |s: &'static str| axum::http::HeaderValue::from_static(s);
        // (peer, X-Forwarded-For headers, client)
        let cases: [(&str, &[&'static str], &str); 8] = [
            ("203.0.113.9", &["198.51.100.1"], "203.0.113.9"),
            ("10.0.0.2", &[], "10.0.0.2"),
            ("10.0.0.2", &["198.51.100.1"], "198.51.100.1"),
            (
                "10.0.0.2",
                &["6.6.6.6, 198.51.100.1, 10.0.0.7"],
                "198.51.100.1",
            ),
            ("10.0.0.2", &["6.6.6.6", "198.51.100.1"], "198.51.100.1"),
            ("10.0.0.2", &["10.1.1.1, 10.0.0.7"], "10.1.1.1"),
            ("10.0.0.2", &["not-an-ip, 10.0.0.7"], "10.0.0.7"),
            ("::1", &["2001:db8::5"], "2001:db8::5"),
        ];
        for (peer, headers, want) in cases {
            let values: Vec<_> = headers.iter().map(|h| hv(h)).collect();
            assert_eq!(
                client_ip(ip(peer), values.iter(), &nets),
                ip(want),
                "{peer} {headers:?}"
            );
        }
        // No trusted ranges: the header is never read.
        let values = [hv("198.51.100.1")];
        assert_eq!(
            client_ip(ip("10.0.0.2"), values.iter(), &[]),
            ip("10.0.0.2")
        );
    }

    #[test]
    fn an_array_where_a_nested_object_is_wanted_is_an_invalid_field_naming_it() {
        let body = br#"{"enabled": true, "timezone": "UTC", "days": []}"#;
        let e = parse::<OpeningHours>(body, Shape::Object).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidField);
        assert_eq!(
            e.detail,
            "days: invalid type: sequence, expected a JSON object"
        );
        let body = br#"{"account": "a", "email": "e", "password": "p",
                        "device": {"id": "d", "platform": "cli", "name": "n", "app_version": "1"},
                        "push": ["fcm", "t"]}"#;
        let e = parse::<LoginRequest>(body, Shape::Object).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidField);
        assert_eq!(
            e.detail,
            "push: invalid type: sequence, expected a JSON object"
        );
    }
}
