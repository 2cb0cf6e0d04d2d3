//! The web console: server-rendered pages for compliance officers and
//! safety reviewers, served by the audit API at `/` with the API's tokens,
//! roles and clinic scopes. A token is given once on the sign-in form and
//! kept in an HttpOnly, SameSite=Strict session cookie (Secure behind
//! TLS). Every page that shows patient data reads through the same
//! functions as the API, which record the read (`access.recorded`) before
//! the page is sent. No script: a strict Content-Security-Policy allows
//! only the console's own stylesheet.

mod pages;
mod plot;
mod view;

/// One line saying what an event records (the console's and the CLI's).
pub use view::summary;

use axum::{
    Form, Router,
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
};
use serde::Deserialize;

use crate::{
    auth::{SESSION_COOKIE, to_hex},
    error::ApiError,
    routes::AppState,
};

/// The console's routes (merged into the API's router, under its layers).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(pages::home))
        .route("/sign-in", post(sign_in))
        .route("/sign-out", post(sign_out))
        .route("/console.css", get(stylesheet))
        .route("/go", get(pages::go))
        .route("/console/status", get(pages::status))
        .route("/console/{clinic}", get(pages::clinic))
        .route("/console/{clinic}/open", get(pages::open))
        .route("/console/{clinic}/patients/{patient}", get(pages::timeline))
        .route(
            "/console/{clinic}/patients/{patient}/access-log",
            get(pages::access_log),
        )
        .route(
            "/console/{clinic}/adverse-events/{event_id}",
            get(pages::investigation),
        )
        .route("/console/{clinic}/lots/{lot}", get(pages::lot))
        .route("/console/{clinic}/findings", get(pages::findings))
        .route("/console/{clinic}/signals", get(pages::signals))
        .route("/console/{clinic}/quarantine", get(pages::quarantine))
        .layer(axum::middleware::map_response(security_headers))
}

/// What every console answer carries: no script at all, nothing framed,
/// nothing sniffed, nothing cached, no referrer leaving for another site.
async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; \
             frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        // Same-origin: no patient id leaves in a referrer, and the console's
        // own forms still carry their origin (with no-referrer, "null").
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

async fn stylesheet() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("console.css"),
    )
}

#[derive(Deserialize)]
struct SignIn {
    token: String,
}

/// Whether the request came over TLS (directly or through a proxy that
/// says so): the session cookie is then `Secure`.
fn over_tls(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

fn session_cookie(value: &str, max_age: Option<u64>, secure: bool) -> HeaderValue {
    let mut cookie = format!("{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict");
    if let Some(age) = max_age {
        cookie.push_str(&format!("; Max-Age={age}"));
    }
    if secure {
        cookie.push_str("; Secure");
    }
    HeaderValue::from_str(&cookie).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Whether a form was posted from another site (its `Origin` is not this
/// host): the console's forms are only taken from its own pages.
fn cross_site(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let origin_host = origin.split("://").nth(1).unwrap_or(origin);
    origin == "null" || origin_host != host
}

fn refused_cross_site() -> Response {
    pages::error_page(ApiError::BadRequest(
        "a form posted from another site is not taken".into(),
    ))
}

/// Checks the token and keeps it in the session cookie (for 12 hours).
async fn sign_in(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<SignIn>,
) -> Response {
    if cross_site(&headers) {
        return refused_cross_site();
    }
    match state.principals.principal_of(&form.token) {
        Ok(_) => {
            let mut response = Redirect::to("/").into_response();
            let cookie = session_cookie(
                &to_hex(form.token.trim()),
                Some(12 * 3600),
                over_tls(&headers),
            );
            response.headers_mut().insert(header::SET_COOKIE, cookie);
            response
        }
        Err(e) => pages::error_page(e),
    }
}

/// Forgets the session.
async fn sign_out(headers: HeaderMap) -> Response {
    if cross_site(&headers) {
        return refused_cross_site();
    }
    let mut response = Redirect::to("/").into_response();
    let cookie = session_cookie("", Some(0), over_tls(&headers));
    response.headers_mut().insert(header::SET_COOKIE, cookie);
    response
}

/// An API error as an HTML page: same status, and the refusal kept for
/// the access log's `access.refused`.
fn html_error(error: ApiError, body: maud::Markup) -> Response {
    let api = error.into_response();
    let status = api.status();
    let mut response = (status, axum::response::Html(body.into_string())).into_response();
    if let Some(refused) = api.extensions().get::<crate::error::Refused>() {
        response.extensions_mut().insert(refused.clone());
    }
    if status == StatusCode::UNAUTHORIZED {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    response
}
