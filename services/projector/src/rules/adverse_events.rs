//! An adverse event: its link to an injection, the injection it is
//! attributed to, and consent given only after injections.

use prolo_schemas::Envelope;
use uuid::Uuid;

use super::{Draft, ms};
use crate::{model::ConsentEntry, model::Standing, rules::findings::Rule};

/// The injection an adverse event is counted after.
#[derive(Debug, Clone, PartialEq)]
pub struct Attribution {
    /// The injection.
    pub injection: Uuid,
    /// Its signal groups, as it stands.
    pub groups: Vec<(crate::rules::signals::Dimension, String)>,
    /// Inferred (the adverse event named none).
    pub inferred: bool,
    /// The day it was given (see [`crate::rules::signals::day_of`]).
    pub day: i64,
}

/// The injection an adverse event is counted after, its groups, and
/// whether that was inferred: the injection it names, among the patient's
/// injections as they now stand; or, when it names none, the patient's
/// latest injection at or before the onset and at most `window_ms` before
/// it. Injections entered in error count for nothing. `None` when there is
/// no such injection (or it names another patient's).
pub fn attributed_injection(
    injections: &[crate::model::InjectionEntry],
    linked: Option<Uuid>,
    onset_ms: i64,
    window_ms: i64,
) -> Option<Attribution> {
    let standing = |i: &&crate::model::InjectionEntry| {
        !matches!(i.origin.standing, Standing::EnteredInError { .. })
    };
    match linked {
        Some(id) => injections
            .iter()
            .filter(standing)
            .find(|i| i.origin.event_id == id)
            .map(|i| Attribution {
                injection: id,
                groups: i.groups.clone(),
                inferred: false,
                day: crate::rules::signals::day_of(i.origin.occurred_at_ms),
            }),
        None => injections
            .iter()
            .filter(standing)
            .filter(|i| {
                i.origin.occurred_at_ms <= onset_ms
                    && onset_ms - i.origin.occurred_at_ms <= window_ms
            })
            .max_by_key(|i| i.origin.occurred_at_ms)
            .map(|i| Attribution {
                injection: i.origin.event_id,
                groups: i.groups.clone(),
                inferred: true,
                day: crate::rules::signals::day_of(i.origin.occurred_at_ms),
            }),
    }
}

/// `consent_after_injection`: a consent that occurred after injections its
/// period covers (a back-dated `valid_from` does not make consent prior).
/// The injections are the patient's, as they stand.
pub fn consent_after_injection(
    e: &Envelope,
    consent: &ConsentEntry,
    injections: &[crate::model::InjectionEntry],
) -> Option<Draft> {
    let given = ms(e.occurred_at);
    let covered: Vec<Uuid> = injections
        .iter()
        .filter(|i| {
            i.origin.standing.counts()
                && i.origin.occurred_at_ms < given
                && consent.valid_from_ms <= i.origin.occurred_at_ms
                && consent
                    .valid_until_ms
                    .is_none_or(|until| i.origin.occurred_at_ms < until)
        })
        .map(|i| i.origin.event_id)
        .collect();
    if covered.is_empty() {
        return None;
    }
    let mut evidence = vec![e.event_id];
    evidence.extend(&covered);
    Some(Draft {
        rule: Rule::ConsentAfterInjection,
        evidence,
        detail: format!(
            "consent given after {} injection(s) its period covers (valid_from back-dated)",
            covered.len()
        ),
        practitioner: None,
        site_key: None,
    })
}

/// One void of an adverse event in a group (a lot, a practitioner): when
/// (the stream's clock, ms), the `record.entered_in_error`, the adverse event.
pub type Void = (i64, Uuid, Uuid);

/// Keeps a group's voids within the window ending at `now_ms` and adds
/// this one; the voids to raise `adverse_events_voided_together` with when
/// this one makes the group reach `settings.voids_together` (once a burst:
/// the next void in the same window does not raise it again).
pub fn voided_together(
    recent: &mut Vec<Void>,
    void: Void,
    settings: &crate::rules::findings::FindingSettings,
) -> Option<Vec<Void>> {
    let window = chrono::Duration::hours(settings.void_window_hours).num_milliseconds();
    recent.retain(|(at, ..)| *at > void.0 - window);
    if recent.iter().any(|(_, _, adverse)| *adverse == void.2) {
        return None;
    }
    recent.push(void);
    (recent.len() == settings.voids_together.max(1)).then(|| recent.clone())
}
