//! The machine-readable contract: `GET /v1/openapi.json`, an OpenAPI 3.1 document of every
//! route of the API.
//!
//! Guarantees:
//! - The document is generated from the code, never written by hand: each route is registered
//!   through `utoipa_axum::routes!` from the `#[utoipa::path]` of its handler (so a route
//!   cannot be served without being documented, nor documented at another path or method),
//!   and every shape is the `ToSchema` derive of the wire type in `presence-protocol` (so each
//!   wire name is written once, in serde's attributes).
//! - The errors every route may answer are added here once ([`Errors`]), with the
//!   `{"error": {"code", "detail"}}` shape: `400`, `413`, `415` and `422` on a route that
//!   takes a body or parameters, `401` on a route that needs a credential, `500` and `503`
//!   everywhere. A route lists only the errors of its own (`403`, `404`, `409`, `429`).
//! - The credentials are named security schemes, all `Authorization: Bearer`: the server's
//!   `--admin-token` (`operator`), a session token (`session`) and an API key (`api_key`).
//! - The document is built once per process and served as is, without a credential.

use std::sync::OnceLock;

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use presence_protocol::{
    AccountEvent, AgentAvailabilityData, AgentStatusData, ChatboxViewData, ErrorBody, PingEvent,
    SessionData, SessionEndedEvent, SnapshotEvent,
};
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, HeaderBuilder, OpenApi, Ref, RefOr};
use utoipa::{Modify, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;

/// The security scheme of the server's `--admin-token`.
pub const OPERATOR: &str = "operator";
/// The security scheme of a session token (`POST /v1/login`).
pub const SESSION: &str = "session";
/// The security scheme of an API key (`pk_...`, `POST /v1/admin/api-keys`).
pub const API_KEY: &str = "api_key";

/// The document's frame: its title, version, credentials and the errors common to all
/// routes. The routes themselves are added by the areas' routers.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Presence API",
        version = "1",
        description = "Agent availability for live chat: agents' devices, administration, the \
                       public chat box widget. Times are integers in milliseconds since the \
                       Unix epoch on the server's clock unless a name ends in `_ms` (a \
                       duration). Unknown request fields are ignored; answers may grow fields. \
                       Every error is `{\"error\": {\"code\", \"detail\"}}`.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    components(schemas(
        ErrorBody,
        SnapshotEvent,
        SessionEndedEvent,
        PingEvent,
        AccountEvent,
        AgentStatusData,
        AgentAvailabilityData,
        ChatboxViewData,
        SessionData
    )),
    modifiers(&Credentials),
)]
pub struct Frame;

/// This area's route.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(openapi_json))
}

/// The document, as JSON.
pub fn document() -> &'static [u8] {
    static DOC: OnceLock<Vec<u8>> = OnceLock::new();
    DOC.get_or_init(|| {
        let doc = super::api(super::Deadline::document()).into_openapi();
        serde_json::to_vec(&doc).expect("an OpenAPI document serialises")
    })
}

/// The OpenAPI 3.1 document of this API.
#[utoipa::path(
    get,
    path = "/v1/openapi.json",
    tag = "meta",
    responses((status = 200, description = "The OpenAPI 3.1 document of every route",
               content_type = "application/json", body = Object)),
)]
async fn openapi_json() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        document(),
    )
        .into_response()
}

struct Credentials;

impl Modify for Credentials {
    fn modify(&self, doc: &mut OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        let bearer = |what: &str| {
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(what))
                    .build(),
            )
        };
        components.add_security_scheme(
            OPERATOR,
            bearer("The server's `--admin-token`: creates accounts."),
        );
        components.add_security_scheme(
            SESSION,
            bearer("A session token from `POST /v1/login` (or `/v1/login/token`, or `POST /v1/admin/sessions`). The administration routes need an owner's or admin's."),
        );
        components.add_security_scheme(
            API_KEY,
            bearer("An API key `pk_...` of the account (`POST /v1/admin/api-keys`): an admin's rights on `/v1/admin/`, except `sign-in` and `api-keys`."),
        );
    }
}

/// Adds the errors any route may answer (see the module's guarantees) where the route does
/// not describe them itself. Applied to the whole document, once every route is in.
pub struct Errors;

impl Errors {
    fn add(op: &mut Operation) {
        let takes_input =
            op.request_body.is_some() || op.parameters.as_ref().is_some_and(|p| !p.is_empty());
        let needs_credential = op.security.as_ref().is_some_and(|s| !s.is_empty());
        let mut common: Vec<(&str, &str, bool)> = Vec::new();
        if takes_input || needs_credential {
            common.push((
                "400",
                "`bad_request`: malformed JSON or parameter, or several `Authorization` headers",
                false,
            ));
        }
        if needs_credential {
            common.push((
                "401",
                "`unauthorized` (no or unknown credential) or `session_expired` (the session has ended)",
                false,
            ));
        }
        if op.request_body.is_some() {
            common.push(("413", "`payload_too_large`: the body is over 64 KiB", false));
            common.push((
                "415",
                "`unsupported_media_type`: the body is not `application/json`",
                false,
            ));
        }
        if takes_input {
            common.push((
                "422",
                "`invalid_field`: a field is missing or out of bounds; the detail names it",
                false,
            ));
        }
        common.push(("500", "`internal`: a failure of the server, logged", false));
        common.push((
            "503",
            "`unavailable`: a store is out of reach, the server is too busy, or the request was not answered in time",
            true,
        ));
        for (status, description, retry) in common {
            if op.responses.responses.contains_key(status) {
                continue;
            }
            op.responses.responses.insert(
                status.to_owned(),
                RefOr::T(error(description, retry).build()),
            );
        }
    }
}

/// An error answer: the error shape, and `Retry-After` when `retry`.
pub fn error(description: &str, retry: bool) -> ResponseBuilder {
    let mut b = ResponseBuilder::new().description(description).content(
        "application/json",
        ContentBuilder::new()
            .schema(Some(Ref::from_schema_name(ErrorBody::name())))
            .build(),
    );
    if retry {
        b = b.header(
            "Retry-After",
            HeaderBuilder::new()
                .schema(<u64 as utoipa::PartialSchema>::schema())
                .description(Some("Seconds to wait before trying again"))
                .build(),
        );
    }
    b
}

impl Modify for Errors {
    fn modify(&self, doc: &mut OpenApi) {
        for item in doc.paths.paths.values_mut() {
            for op in operations(item) {
                Self::add(op);
            }
        }
    }
}

/// Every operation of a path.
pub fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        item.get.as_mut(),
        item.put.as_mut(),
        item.post.as_mut(),
        item.delete.as_mut(),
        item.options.as_mut(),
        item.head.as_mut(),
        item.patch.as_mut(),
        item.trace.as_mut(),
    ]
    .into_iter()
    .flatten()
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    fn doc() -> Value {
        serde_json::from_slice(super::document()).expect("the document is JSON")
    }

    /// Every `$ref` in `v`.
    fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get("$ref") {
                    out.push(r);
                }
                m.values().for_each(|v| refs(v, out));
            }
            Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }

    #[test]
    fn every_reference_resolves_and_every_credential_is_a_defined_scheme() {
        let doc = doc();
        assert_eq!(doc["openapi"], "3.1.0");
        let mut all = Vec::new();
        refs(&doc, &mut all);
        assert!(!all.is_empty());
        for r in all {
            let pointer = r.strip_prefix('#').expect("local reference");
            assert!(doc.pointer(pointer).is_some(), "{r} resolves");
        }
        let schemes = doc["components"]["securitySchemes"]
            .as_object()
            .expect("security schemes");
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for (method, op) in item.as_object().expect("path item") {
                for req in op["security"].as_array().into_iter().flatten() {
                    for name in req.as_object().expect("requirement").keys() {
                        assert!(schemes.contains_key(name), "{method} {path}: {name}");
                    }
                }
                let responses = op["responses"].as_object().expect("responses");
                assert!(
                    responses.keys().any(|s| s.starts_with('2')),
                    "{method} {path} documents its success"
                );
                for must in ["500", "503"] {
                    assert!(responses.contains_key(must), "{method} {path}: {must}");
                }
                if op.get("security").is_some() {
                    assert!(responses.contains_key("401"), "{method} {path}: 401");
                }
            }
        }
    }

    /// Routes are registered through `routes!`, from their handler's `#[utoipa::path]`, so
    /// they cannot differ from the document. Only the web files (outside the API) are
    /// registered the plain way; this fails when another route is.
    #[test]
    fn only_the_web_files_are_routed_outside_the_document() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/http");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).expect("src/http") {
            let path = entry.expect("entry").path();
            let text = std::fs::read_to_string(&path).expect("source");
            // The code, not its tests (this one names the calls it looks for).
            let code = text.split("#[cfg(test)]").next().unwrap_or("");
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            for (n, line) in code.lines().enumerate() {
                let plain = [".route(", ".route_service(", ".nest(", ".nest_service("]
                    .iter()
                    .any(|call| line.contains(call));
                if !plain {
                    continue;
                }
                assert_eq!(
                    name,
                    "assets.rs",
                    "{name}:{}: a route outside `routes!` is missing from the document: {line}",
                    n + 1
                );
                seen += 1;
                for api in ["\"/v1/", "\"/healthz", "\"/metrics"] {
                    assert!(
                        !line.contains(api),
                        "{name}:{}: an API route among the web files: {line}",
                        n + 1
                    );
                }
            }
        }
        assert!(seen > 0, "the scan sees the web files' routes");
    }
}
