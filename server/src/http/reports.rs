//! Reports over the availability log: `/v1/admin/reports/*` for owners, admins and API
//! keys, and `/v1/me/timeline` for every agent.
//!
//! Guarantees: query parameters are read strictly (a time that is not an integer is a `422`
//! naming it); `Accept: text/csv` on the availability report answers CSV, one row per agent
//! and day; every other answer is JSON.

use axum::Json;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use presence_protocol::{AvailabilityReport, CoverageReport, ErrorBody, TimelineReport};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::extract::{Admin, Auth};
use crate::error::{ApiError, ApiResult};
use crate::ops::reports::ReportParams;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(availability))
        .routes(routes!(coverage))
        .routes(routes!(timeline))
        .routes(routes!(my_timeline))
}

/// The parameters of a report, from the query string.
pub struct Params(ReportParams);

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let mut p = ReportParams::default();
        let query = parts.uri.query().unwrap_or("");
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            let time = |v: &str| {
                v.parse::<i64>().map_err(|_| {
                    ApiError::invalid_field(&key, "must be an integer (ms since the epoch)")
                })
            };
            match &*key {
                "from" => p.from = Some(time(&value)?),
                "to" => p.to = Some(time(&value)?),
                "tz" => p.tz = Some(value.into_owned()),
                "group" => p.group = Some(value.into_owned()),
                "agent" => p.agent = Some(value.into_owned()),
                _ => {}
            }
        }
        Ok(Params(p))
    }
}

fn wants_csv(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|v| v.split(';').next().unwrap_or("").trim() == "text/csv")
}

/// Time in each availability state per agent and per calendar day.
#[utoipa::path(
    get,
    path = "/v1/admin/reports/availability",
    tag = "reports",
    security(("session" = []), ("api_key" = [])),
    params(crate::ops::reports::AvailabilityParams),
    responses(
        (status = 200, description = "The report (`Accept: text/csv`: one row per agent and day: \
            `agent_id,agent_name,date,online_ms,busy_ms,offline_ms,signed_out_ms`)",
            content(
                (AvailabilityReport = "application/json"),
                (String = "text/csv"),
            )),
        (status = 403, description = "`forbidden`: the caller is not an owner or admin", body = ErrorBody),
        (status = 422, description = "`invalid_field`: `from`, `to`, `tz` or `group`", body = ErrorBody),
    ),
)]
async fn availability(
    State(state): State<AppState>,
    Admin(p): Admin,
    headers: HeaderMap,
    Params(q): Params,
) -> ApiResult<Response> {
    let report = state.ops.availability_report(&p, q).await?;
    if wants_csv(&headers) {
        let name = format!(
            "attachment; filename=\"availability-{}-{}.csv\"",
            report.from, report.to
        );
        let mut resp = report.to_csv().into_response();
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/csv; charset=utf-8"),
        );
        if let Ok(v) = HeaderValue::from_str(&name) {
            h.insert(header::CONTENT_DISPOSITION, v);
        }
        return Ok(resp);
    }
    Ok(Json(report).into_response())
}

/// Each chat box's time within opening hours: online, busy, offline, and the coverage.
#[utoipa::path(
    get,
    path = "/v1/admin/reports/coverage",
    tag = "reports",
    security(("session" = []), ("api_key" = [])),
    params(crate::ops::reports::RangeParams),
    responses(
        (status = 200, description = "The report", body = CoverageReport),
        (status = 403, description = "`forbidden`: the caller is not an owner or admin", body = ErrorBody),
        (status = 422, description = "`invalid_field`: `from`, `to` or `tz`", body = ErrorBody),
    ),
)]
async fn coverage(
    State(state): State<AppState>,
    Admin(p): Admin,
    Params(q): Params,
) -> ApiResult<Response> {
    Ok(Json(state.ops.coverage_report(&p, q).await?).into_response())
}

/// An agent's availability intervals, oldest first; the last has no `end` while still open.
#[utoipa::path(
    get,
    path = "/v1/admin/reports/timeline",
    tag = "reports",
    security(("session" = []), ("api_key" = [])),
    params(crate::ops::reports::TimelineParams),
    responses(
        (status = 200, description = "The agent's intervals", body = TimelineReport),
        (status = 403, description = "`forbidden`: the caller is not an owner or admin", body = ErrorBody),
        (status = 422, description = "`invalid_field`: `agent`, `from` or `to`", body = ErrorBody),
    ),
)]
async fn timeline(
    State(state): State<AppState>,
    Admin(p): Admin,
    Params(q): Params,
) -> ApiResult<Response> {
    Ok(Json(state.ops.timeline(&p, q, false).await?).into_response())
}

/// The caller's own availability intervals (today, this week: the dashboard's history).
#[utoipa::path(
    get,
    path = "/v1/me/timeline",
    tag = "me",
    security(("session" = [])),
    params(crate::ops::reports::RangeParams),
    responses(
        (status = 200, description = "The agent's intervals", body = TimelineReport),
        (status = 422, description = "`invalid_field`: `from`, `to` or `tz`", body = ErrorBody),
    ),
)]
async fn my_timeline(
    State(state): State<AppState>,
    Auth(p): Auth,
    Params(q): Params,
) -> ApiResult<Response> {
    Ok(Json(state.ops.timeline(&p, q, true).await?).into_response())
}
