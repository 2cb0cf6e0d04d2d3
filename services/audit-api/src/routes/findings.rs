//! A clinic's compliance findings.

use axum::{
    Json,
    response::{IntoResponse, Response},
};
use prolo_query as q;
use prolo_schemas::PatientId;

use super::{
    admit::{Admitted, ask, id},
    audited::patients_named,
    params::{Checked, FindingParams, bounded_limit, logged},
};
use crate::{answer::Page, error::ApiError};

pub(super) async fn findings(
    asker: Admitted<ask::Findings>,
    Checked(params): Checked<FindingParams>,
) -> Result<Response, ApiError> {
    Ok(Json(findings_page(&asker, &params).await?).into_response())
}

/// A page of a clinic's findings, its read recorded (the API's answer and
/// the console's page). Asked about a patient, that patient is on the
/// read's record also when none of their findings match.
pub(crate) async fn findings_page(
    asker: &Admitted<ask::Findings>,
    params: &FindingParams,
) -> Result<Page<prolo_projector::rules::findings::Finding>, ApiError> {
    let limit = bounded_limit(params.limit)?;
    let patient: Option<PatientId> = params.patient.as_deref().map(id).transpose()?;
    let filter = q::FindingFilter {
        rule: params.rule,
        status: params.status.map(|s| s.as_str().to_owned()),
        patient: patient.clone(),
        practitioner: params.practitioner.as_deref().map(id).transpose()?,
        from: params.from,
        to: params.to,
    };
    let start = params.cursor.unwrap_or(0);
    let (total, found) = asker
        .read(move |store, clinic| {
            // By rule and status alone, the fold's counts give the total
            // and only the page is read; other filters read every match.
            let counted = filter.patient.is_none()
                && filter.practitioner.is_none()
                && filter.from.is_none()
                && filter.to.is_none();
            if !counted {
                let all = q::findings(store, clinic, &filter)?;
                let total = all.len();
                return Ok((total, all.into_iter().skip(start).take(limit).collect()));
            }
            let total: u64 = store
                .finding_counts(clinic.as_str())?
                .iter()
                .filter(|(rule, _)| filter.rule.is_none_or(|r| r.code() == *rule))
                .map(|(_, c)| match filter.status.as_deref() {
                    Some("open") => c.open(),
                    Some(_) => c.resolved,
                    None => c.raised,
                })
                .sum();
            let page = q::findings_range(store, clinic, &filter, start, limit)?;
            Ok((total as usize, page))
        })
        .await?;
    let end = (start + found.len()).min(total);
    let next_cursor = (end < total && !found.is_empty()).then_some(end);
    let exposed = patients_named(found.iter().filter_map(|f| f.patient_id.as_deref()));
    asker
        .asked(patient)
        .record(logged(params), found.len() as u64, exposed)
        .await?;
    Ok(Page {
        total,
        items: found,
        next_cursor: next_cursor.map(|c| c.to_string()),
    })
}
