//! Query parameters: bounded (a value outside is refused with 400 naming
//! it), described in the OpenAPI document from the same types, and recorded
//! as given in the access log.

use std::collections::BTreeMap;

use axum::{
    extract::{FromRequestParts, Query},
    http::request::Parts,
};
use chrono::{DateTime, Utc};
use prolo_query as q;
use prolo_schemas::EventType;
use serde::Deserialize;

use crate::{error::ApiError, render::Format};

/// Query parameters: bounded (a value outside is refused with 400 naming
/// it), described in the OpenAPI document from the same type, and recorded
/// as given in the access log.
pub(crate) trait QueryParams: serde::de::DeserializeOwned + serde::Serialize {
    /// Refuses a value outside its bounds.
    fn check(&self) -> Result<(), ApiError>;
}

/// A request's query parameters, parsed and checked: one that does not
/// parse or is out of its bounds is refused with 400 naming it. Extracted
/// after the handler's [`super::admit`] extractor, so a refusal of who asks
/// comes first.
pub(crate) struct Checked<P>(pub(crate) P);

impl<P: QueryParams + Send, S: Send + Sync> FromRequestParts<S> for Checked<P> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Query(params) = Query::<P>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::BadRequest(e.body_text()))?;
        params.check()?;
        Ok(Checked(params))
    }
}

/// The parameters as given, for the access log.
pub(super) fn logged<P: serde::Serialize>(params: &P) -> BTreeMap<String, String> {
    let serde_json::Value::Object(map) = serde_json::to_value(params).unwrap_or_default() else {
        return BTreeMap::new();
    };
    map.into_iter()
        .filter_map(|(k, v)| match v {
            serde_json::Value::Null => None,
            serde_json::Value::String(s) => Some((k, s)),
            other => Some((k, other.to_string())),
        })
        .collect()
}

/// Query parameters of the event lists (histories, access logs).
#[derive(Debug, Default, Deserialize, serde::Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    /// Comma-separated event types, e.g. `injection.given,adverse_event.reported`.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub(crate) event_type: Option<String>,
    /// Clinical time from (RFC 3339, inclusive), within 100 years of today.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) from: Option<DateTime<Utc>>,
    /// Clinical time to (RFC 3339, exclusive), within 100 years of today.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) to: Option<DateTime<Utc>>,
    /// Answer as known at this time: only events JetStream stored up to it
    /// (`stored_at`, the stream's clock), and only the corrections known then.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) as_of: Option<DateTime<Utc>>,
    /// The `next_cursor` of the previous page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) cursor: Option<u64>,
    /// Page size, 1 to 1000 (default 100).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = MAX_LIMIT))]
    pub(crate) limit: Option<usize>,
    /// `json` (paginated, the default), `jsonl` or `csv` (the whole answer, streamed).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = Format::NAMES))]
    pub(crate) format: Option<String>,
}

impl QueryParams for ListParams {
    fn check(&self) -> Result<(), ApiError> {
        bounded_limit(self.limit)?;
        within_a_century("from", self.from)?;
        within_a_century("to", self.to)?;
        within_a_century("as_of", self.as_of)
    }
}

impl ListParams {
    pub(crate) fn filter(&self) -> Result<q::HistoryFilter, ApiError> {
        let event_types = match &self.event_type {
            None => Vec::new(),
            Some(list) => list
                .split(',')
                .map(|t| {
                    t.trim()
                        .parse::<EventType>()
                        .map_err(|e| ApiError::BadRequest(e.to_string()))
                })
                .collect::<Result<_, _>>()?,
        };
        Ok(q::HistoryFilter {
            event_types,
            from: self.from,
            to: self.to,
            as_of: self.as_of,
        })
    }
}

/// Query parameters of an adverse-event investigation.
#[derive(Debug, Default, Deserialize, serde::Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InvestigationParams {
    /// Days around the onset, 1 to 365 (default 14).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = MAX_WINDOW_DAYS))]
    pub(crate) window_days: Option<i64>,
}

impl QueryParams for InvestigationParams {
    fn check(&self) -> Result<(), ApiError> {
        match self.window_days {
            Some(days) if !(1..=MAX_WINDOW_DAYS).contains(&days) => Err(ApiError::BadRequest(
                format!("window_days: {days} is not between 1 and {MAX_WINDOW_DAYS}"),
            )),
            _ => Ok(()),
        }
    }
}

/// Query parameters of a lot trace.
#[derive(Debug, Default, Deserialize, serde::Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TraceParams {
    /// The `next_cursor` of the previous page of injections.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) cursor: Option<u64>,
    /// Injections per page, 1 to 1000 (default 100).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = MAX_LIMIT))]
    pub(crate) limit: Option<usize>,
    /// `json` (paginated, the default), `jsonl` or `csv` (every injection, streamed).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = Format::NAMES))]
    pub(crate) format: Option<String>,
}

impl QueryParams for TraceParams {
    fn check(&self) -> Result<(), ApiError> {
        bounded_limit(self.limit).map(|_| ())
    }
}

/// Query parameters of a plain paged list (the quarantine).
#[derive(Debug, Default, Deserialize, serde::Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PageParams {
    /// The `next_cursor` of the previous page (a stream sequence).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) cursor: Option<u64>,
    /// Items per page, 1 to 1000 (default 100).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = MAX_LIMIT))]
    pub(crate) limit: Option<usize>,
}

impl QueryParams for PageParams {
    fn check(&self) -> Result<(), ApiError> {
        bounded_limit(self.limit).map(|_| ())
    }
}

/// Whether a finding is still open.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum FindingStatus {
    /// Not resolved by a later event.
    Open,
    /// Resolved by a later event (`resolved_by`).
    Resolved,
}

impl FindingStatus {
    /// As the query library names it.
    pub(super) fn as_str(self) -> &'static str {
        match self {
            FindingStatus::Open => "open",
            FindingStatus::Resolved => "resolved",
        }
    }
}

/// Query parameters of the findings query.
#[derive(Debug, Default, Deserialize, serde::Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FindingParams {
    /// Only this rule.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) rule: Option<prolo_projector::rules::findings::Rule>,
    /// Only open or only resolved findings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) status: Option<FindingStatus>,
    /// Only about this patient.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) patient: Option<String>,
    /// Only about this practitioner.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) practitioner: Option<String>,
    /// Clinical time of the event a finding is about, from (RFC 3339, inclusive).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) from: Option<DateTime<Utc>>,
    /// … to (RFC 3339, exclusive).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) to: Option<DateTime<Utc>>,
    /// The `next_cursor` of the previous page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) cursor: Option<usize>,
    /// Page size, 1 to 1000 (default 100).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = MAX_LIMIT))]
    pub(crate) limit: Option<usize>,
}

impl QueryParams for FindingParams {
    fn check(&self) -> Result<(), ApiError> {
        bounded_limit(self.limit)?;
        within_a_century("from", self.from)?;
        within_a_century("to", self.to)
    }
}

/// The page size when none is asked for.
pub(super) const DEFAULT_LIMIT: usize = 100;

/// The largest page.
pub(super) const MAX_LIMIT: usize = 1000;

/// The page size asked for (100 when absent), refused outside 1 to [`MAX_LIMIT`].
pub(super) fn bounded_limit(limit: Option<usize>) -> Result<usize, ApiError> {
    match limit {
        None => Ok(DEFAULT_LIMIT),
        Some(limit) if (1..=MAX_LIMIT).contains(&limit) => Ok(limit),
        Some(limit) => Err(ApiError::BadRequest(format!(
            "limit: {limit} is not between 1 and {MAX_LIMIT}"
        ))),
    }
}

/// The widest investigation window, days.
pub(super) const MAX_WINDOW_DAYS: i64 = 365;

/// A time parameter must lie within 100 years of now: anything further is a
/// typo, and would overflow the arithmetic done with it.
pub(super) fn within_a_century(name: &str, value: Option<DateTime<Utc>>) -> Result<(), ApiError> {
    let Some(value) = value else {
        return Ok(());
    };
    let century = chrono::Duration::days(36_525);
    let now = Utc::now();
    if value < now - century || value > now + century {
        return Err(ApiError::BadRequest(format!(
            "{name}: {} is not within 100 years of today",
            value.to_rfc3339()
        )));
    }
    Ok(())
}
