//! What a patient or practitioner held at a time, and which later events
//! resolve an open finding.

use prolo_schemas::{CredentialKind, EventType, ImagingPurpose};

use crate::{
    model::{ClinicalTag, ConsentEntry, CredentialEntry, Origin, PatientSummary},
    rules::findings::{OpenFinding, Rule},
};

/// Whether an open finding about the patient is now satisfied by the
/// patient's record (after a consent, examination, candidacy decision or
/// imaging was folded into it).
pub fn patient_finding_resolved(summary: &PatientSummary, open: &OpenFinding) -> bool {
    match open.rule {
        Rule::NoActiveConsent => active_consents(&summary.consents, open.about_ms)
            .next()
            .is_some(),
        Rule::SiteOutsideConsent => active_consents(&summary.consents, open.about_ms).any(|c| {
            open.site_key
                .as_ref()
                .is_some_and(|s| consent_covers(&c.sites, s))
        }),
        Rule::NoExaminationOrCandidacy => examined_and_candidate(summary, open.about_ms),
        Rule::SeriesWithoutFollowUpImaging => follow_up_imaged(summary, open.about_ms),
        _ => false,
    }
}

/// Whether a credential finding is now satisfied by the practitioner's credentials.
pub fn credential_finding_resolved(credentials: &[CredentialEntry], open: &OpenFinding) -> bool {
    open.rule == Rule::NoValidCredential && credential_valid(credentials, open.about_ms)
}

/// An examination and a positive candidacy decision, both standing, before `at_ms`.
pub fn examined_and_candidate(summary: &PatientSummary, at_ms: i64) -> bool {
    let before = |t: EventType, tag: Option<ClinicalTag>| {
        summary.clinical.iter().any(|c| {
            c.origin.standing.counts()
                && c.event_type == t
                && c.origin.occurred_at_ms <= at_ms
                && tag.is_none_or(|tag| c.tag == tag)
        })
    };
    before(EventType::ExaminationDone, None)
        && before(
            EventType::CandidacyAssessed,
            Some(ClinicalTag::Candidacy { candidate: true }),
        )
}

/// The latest standing candidacy decision at or before `at_ms`.
pub fn latest_candidacy(
    summary: &PatientSummary,
    at_ms: i64,
) -> Option<&crate::model::ClinicalEntry> {
    summary
        .clinical
        .iter()
        .filter(|c| {
            c.origin.standing.counts()
                && c.event_type == EventType::CandidacyAssessed
                && c.origin.occurred_at_ms <= at_ms
        })
        .max_by_key(|c| (c.origin.occurred_at_ms, c.origin.seq))
}

/// Follow-up imaging, standing, before `at_ms`.
pub fn follow_up_imaged(summary: &PatientSummary, at_ms: i64) -> bool {
    summary.clinical.iter().any(|c| {
        c.origin.standing.counts()
            && c.event_type == EventType::ImagingRecorded
            && c.tag == ClinicalTag::Imaging(ImagingPurpose::FollowUp)
            && c.origin.occurred_at_ms <= at_ms
    })
}

/// The consents active at `at_ms`: given, in their period, not withdrawn by then.
pub fn active_consents(
    consents: &[ConsentEntry],
    at_ms: i64,
) -> impl Iterator<Item = &ConsentEntry> {
    consents.iter().filter(move |c| {
        stands(&c.origin)
            && c.valid_from_ms <= at_ms
            && c.valid_until_ms.is_none_or(|until| at_ms < until)
            && c.withdrawn
                .is_none_or(|(withdrawn_at, _)| at_ms < withdrawn_at)
    })
}

/// Whether a reconstructive-therapy credential was valid on the day of `at_ms`.
pub fn credential_valid(credentials: &[CredentialEntry], at_ms: i64) -> bool {
    credential_valid_for(credentials, CredentialKind::ReconstructiveTherapy, at_ms)
}

/// Whether a credential of `kind` was valid on the (UTC) day of `at_ms`.
pub fn credential_valid_for(
    credentials: &[CredentialEntry],
    kind: CredentialKind,
    at_ms: i64,
) -> bool {
    let Some(day) =
        chrono::DateTime::<chrono::Utc>::from_timestamp_millis(at_ms).map(|t| t.date_naive())
    else {
        return false;
    };
    credentials.iter().any(|c| {
        stands(&c.origin)
            && c.credential == kind
            && c.valid_from <= day
            && c.valid_until.is_none_or(|until| day <= until)
    })
}

pub(crate) fn stands(origin: &Origin) -> bool {
    origin.standing.counts()
}

/// Whether a consent's sites (as [`site_scope`]s) cover an injection at
/// `injected` (a [`site_scope`]): the same site on the same side, or a
/// consent for either side or both.
pub fn consent_covers(consented: &[String], injected: &str) -> bool {
    let (site, side) = injected.split_once(':').unwrap_or((injected, ""));
    consented.iter().any(|c| {
        c == injected
            || c == site
            || (!side.is_empty() && c.strip_suffix(":bilateral") == Some(site))
    })
}
