//! What every answer passes through: its metrics, the record of a refusal,
//! and a panic turned into a 500.

use axum::{
    extract::State,
    response::{IntoResponse, Response},
};
use prolo_schemas::ClinicId;

use super::AppState;
use crate::error::ApiError;

/// Counts every answer by route template and status, and times it.
pub(super) async fn measure(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    let Some(metrics) = prolo_bus::metrics::active() else {
        return response;
    };
    metrics
        .http_requests
        .get_or_create(&prolo_bus::metrics::HttpLabels {
            route: route.clone(),
            status: response.status().as_u16(),
        })
        .inc();
    metrics
        .http_seconds
        .get_or_create(&prolo_bus::metrics::RouteLabels { route })
        .observe(started.elapsed().as_secs_f64());
    response
}

/// Records every 401 and 403 as `access.refused` (rate-limited per client
/// address), then sends the answer unchanged.
pub(super) async fn record_refusals(
    State(state): State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let headers = request.headers().clone();
    let path = request.uri().path().to_owned();
    let source = request
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip());
    let response = next.run(request).await;
    let status = response.status();
    if status != axum::http::StatusCode::UNAUTHORIZED && status != axum::http::StatusCode::FORBIDDEN
    {
        return response;
    }
    if state.refusals.allow(source) {
        let reason = response
            .extensions()
            .get::<crate::error::Refused>()
            .map_or_else(|| "refused".to_owned(), |r| r.0.clone());
        let clinic = path
            .strip_prefix("/v1/clinics/")
            .or_else(|| path.strip_prefix("/console/"))
            .and_then(|rest| rest.split('/').next())
            .and_then(|c| c.parse::<ClinicId>().ok())
            .unwrap_or_else(ClinicId::unscoped);
        let refusal = crate::access::Refusal {
            principal: state.principals.authenticate(&headers).ok(),
            clinic,
            path,
            status: status.as_u16(),
            reason,
            source_address: source.map(|ip| ip.to_string()),
        };
        if let Err(e) = state.access.refused(refusal).await {
            tracing::warn!(error = %e, "a refused request could not be recorded");
        }
    }
    response
}

/// The answer to a request whose handler panicked.
pub(super) fn panicked(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let what = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("unknown");
    ApiError::Internal(format!("the handler failed ({what})")).into_response()
}
