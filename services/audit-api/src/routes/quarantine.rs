//! The messages a clinic's fold quarantined, with their reasons: malformed
//! ones, and any no recording service sealed (each of those also raised
//! `unproven_publisher`).

use axum::{
    Json,
    response::{IntoResponse, Response},
};
use prolo_query as q;

use super::{
    admit::{Admitted, ask},
    audited::patients_named,
    params::{Checked, PageParams, bounded_limit, logged},
};
use crate::{answer::Page, error::ApiError};

pub(super) async fn quarantine(
    asker: Admitted<ask::Quarantine>,
    Checked(params): Checked<PageParams>,
) -> Result<Response, ApiError> {
    Ok(Json(quarantine_page(&asker, &params).await?).into_response())
}

/// A page of a clinic's quarantined messages, its read recorded: their
/// subjects name the patients they claim to be about.
pub(crate) async fn quarantine_page(
    asker: &Admitted<ask::Quarantine>,
    params: &PageParams,
) -> Result<Page<q::QuarantinedMessage>, ApiError> {
    let limit = bounded_limit(params.limit)?;
    let after = params.cursor.unwrap_or(0);
    let all = asker.read(q::quarantined).await?;
    let total = all.len();
    let after_cursor = all.iter().filter(|m| m.seq > after).count();
    let found: Vec<q::QuarantinedMessage> = all
        .into_iter()
        .filter(|m| m.seq > after)
        .take(limit)
        .collect();
    let next_cursor = found
        .last()
        .filter(|_| after_cursor > limit)
        .map(|last| last.seq.to_string());
    let exposed = patients_named(found.iter().filter_map(q::QuarantinedMessage::patient));
    asker
        .asked(None)
        .record(logged(params), found.len() as u64, exposed)
        .await?;
    Ok(Page {
        total,
        items: found,
        next_cursor,
    })
}
