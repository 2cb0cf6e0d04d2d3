//! The console's pages. Each checks the session's principal exactly as the
//! API does (role, clinic scope), reads through the API's own functions
//! (which record the read before returning), then renders.
mod findings;
mod investigation;
mod lot;
mod patient;
mod tables;

pub(super) use self::{
    findings::{findings, quarantine, signals},
    investigation::investigation,
    lot::lot,
    patient::{access_log, timeline},
};

use axum::{
    extract::{FromRequestParts, Path, Query, State},
    http::{HeaderMap, request::Parts},
    response::{Html, IntoResponse, Redirect, Response},
};
use maud::{Markup, html};
use prolo_schemas::{ClinicId, LotNumber, PatientId};
use serde::Deserialize;

use super::view::layout;
use crate::{
    auth::{ClinicScope, Principal},
    error::ApiError,
    routes::{
        self, AppState,
        admit::{Admitted, Allowed, ask, id},
    },
};

pub(super) type PageResult = Result<Response, Failed>;

/// A page that could not be shown: its error page (boxed: a response is large).
pub(super) struct Failed(Box<Response>);

impl IntoResponse for Failed {
    fn into_response(self) -> Response {
        *self.0
    }
}

/// An API error shown as the console's error page: `?` on an answer's
/// error gives the page.
impl From<ApiError> for Failed {
    fn from(error: ApiError) -> Failed {
        Failed(Box::new(error_page(error)))
    }
}

/// An API error as a page (a sign-in form when there is no session).
pub(super) fn error_page(error: ApiError) -> Response {
    let unauthorized = matches!(error, ApiError::Unauthorized);
    let message = error.to_string();
    let body = html! {
        p.error role="alert" { (message) }
        @if unauthorized { (sign_in_form()) }
        p { a href="/" { "Back to the start" } }
    };
    let title = if unauthorized {
        "Sign in"
    } else {
        "Not allowed"
    };
    super::html_error(error, layout(title, None, None, body))
}

pub(super) fn sign_in_form() -> Markup {
    html! {
        form.card method="post" action="/sign-in" {
            label for="token" { "Access token" }
            input id="token" name="token" type="password" autocomplete="off" required;
            button type="submit" { "Sign in" }
        }
    }
}

pub(super) fn page(title: &str, who: &Principal, clinic: Option<&str>, body: Markup) -> PageResult {
    Ok(Html(layout(title, Some(who), clinic, body).into_string()).into_response())
}

/// One of the API's extractors ([`routes::admit`]) whose refusal is shown as
/// the console's error page: the same checks, a page instead of JSON.
pub(super) struct OnPage<T>(T);

impl<T> FromRequestParts<AppState> for OnPage<T>
where
    T: FromRequestParts<AppState, Rejection = ApiError>,
{
    type Rejection = Failed;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Failed> {
        T::from_request_parts(parts, state)
            .await
            .map(OnPage)
            .map_err(Failed::from)
    }
}

pub(super) fn parsed<T: std::str::FromStr>(value: &str) -> Result<T, Failed>
where
    T::Err: std::fmt::Display,
{
    id(value).map_err(Failed::from)
}

/// The start: the sign-in form, or the clinics the session may read.
pub(super) async fn home(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let Ok(who) = state.principals.authenticate(&headers) else {
        let body = html! {
            p { "Sign in with the access token your administrator gave you. It is kept only in this browser's session cookie." }
            (sign_in_form())
        };
        return Html(layout("Sign in", None, None, body).into_string()).into_response();
    };
    let body = html! {
        @match &who.clinics {
            ClinicScope::Only(clinics) => {
                h2 { "Your clinics" }
                ul { @for c in clinics { li { a href=(format!("/console/{c}")) { (c.as_str()) } } } }
            }
            ClinicScope::All => { p { "You may read every clinic." } }
        }
        form.card method="get" action="/go" {
            label for="clinic" { "Open a clinic" }
            input id="clinic" name="clinic" required;
            button type="submit" { "Open" }
        }
    };
    page("prolo-audit", &who, None, body).unwrap_or_else(IntoResponse::into_response)
}

#[derive(Deserialize)]
pub(super) struct Go {
    clinic: String,
}

/// The start page's form: checks the clinic id, then goes to it.
pub(super) async fn go(Query(go): Query<Go>) -> PageResult {
    let clinic: ClinicId = parsed(go.clinic.trim())?;
    Ok(Redirect::to(&format!("/console/{clinic}")).into_response())
}

#[derive(Deserialize)]
pub(super) struct OpenParams {
    patient: Option<String>,
    lot: Option<String>,
    adverse_event: Option<String>,
}

/// A clinic's start: find a patient, a lot or an adverse event.
pub(super) async fn clinic(OnPage(asker): OnPage<Admitted<ask::ClinicStart>>) -> PageResult {
    let c = asker.clinic.as_str();
    let body = html! {
        form.card method="get" action=(format!("/console/{c}/open")) {
            label for="patient" { "Patient id" }
            input id="patient" name="patient" placeholder="P-1000";
            button type="submit" { "Open timeline" }
        }
        form.card method="get" action=(format!("/console/{c}/open")) {
            label for="lot" { "Lot number" }
            input id="lot" name="lot" placeholder="DX50-2026-114";
            button type="submit" { "Trace lot" }
        }
        form.card method="get" action=(format!("/console/{c}/open")) {
            label for="adverse_event" { "Adverse event id" }
            input id="adverse_event" name="adverse_event";
            button type="submit" { "Investigate" }
        }
        ul.links {
            li { a href=(format!("/console/{c}/findings")) { "Findings" } }
            li { a href=(format!("/console/{c}/signals")) { "Safety signals" } }
            li { a href=(format!("/console/{c}/quarantine")) { "Quarantine" } }
        }
    };
    page(&format!("Clinic {c}"), &asker.principal, Some(c), body)
}

/// The forms' target: checks the id, then goes to its page.
pub(super) async fn open(
    Path(clinic): Path<String>,
    Query(params): Query<OpenParams>,
) -> PageResult {
    let clinic: ClinicId = parsed(&clinic)?;
    let c = clinic.as_str();
    let to = if let Some(p) = params.patient.filter(|p| !p.is_empty()) {
        let p: PatientId = parsed(p.trim())?;
        format!("/console/{c}/patients/{p}")
    } else if let Some(l) = params.lot.filter(|l| !l.is_empty()) {
        let l: LotNumber = parsed(l.trim())?;
        format!("/console/{c}/lots/{l}")
    } else if let Some(a) = params.adverse_event.filter(|a| !a.is_empty()) {
        let a: uuid::Uuid = parsed(a.trim())?;
        format!("/console/{c}/adverse-events/{a}")
    } else {
        format!("/console/{c}")
    };
    Ok(Redirect::to(&to).into_response())
}

/// Stream position, lag, quarantine, chain head, last verification.
pub(super) async fn status(
    State(state): State<AppState>,
    OnPage(Allowed { principal: who, .. }): OnPage<Allowed<ask::Status>>,
) -> PageResult {
    let s = routes::status_answer(&state).await?;
    let body = html! {
        dl.facts {
            dt { "Stream" } dd { (s.stream) }
            dt { "Last sequence" } dd { (s.stream_last_seq.map(|n| n.to_string()).unwrap_or_else(|| "broker not answering".into())) }
            dt { "Folded" } dd { (s.applied_seq) }
            dt { "Lag" } dd { (s.lag.map(|n| n.to_string()).unwrap_or_else(|| "unknown".into())) }
            dt { "Quarantined" } dd { (s.quarantined) }
            dt { "Seals" } dd {
                @if s.seals.checked { "checked against keys " (s.seals.keys.join(", ")) } @else { "not checked: whoever can publish on the stream writes the trail" }
            }
            dt { "Chain head" } dd { code { (s.chain_head) } }
            dt { "Last verification" } dd {
                @match &s.last_verification {
                    Some(v) => { (serde_json::to_string(v).unwrap_or_default()) }
                    None => { "never run" }
                }
            }
        }
    };
    page("Status", &who, None, body)
}
