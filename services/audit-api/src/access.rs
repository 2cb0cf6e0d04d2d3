//! Reads are audited like writes: every read of patient data that succeeds
//! is recorded as an `access.recorded` event before the data is served,
//! naming every patient whose data the answer carries (in several events of
//! at most [`ACCESS_PATIENTS_PER_EVENT_MAX`] patients when there are many).
//! If the record cannot be stored, the data is not served.

use std::collections::{BTreeMap, BTreeSet};

use prolo_schemas::bounds::ACCESS_PATIENTS_PER_EVENT_MAX;

use chrono::Utc;
use prolo_bus::Publisher;
use prolo_schemas::{
    AccessRecorded, AccessRole, Actor, ActorRole, ClinicId, Envelope, IncompleteExport, PatientId,
    bounds::SHORT_TEXT_MAX_CHARS,
};

use crate::{
    auth::{Principal, QueryKind},
    error::ApiError,
};

/// The service name in `source`.
pub const SOURCE: &str = "audit-api";

/// At most this many refusals per client address are recorded per minute,
/// so that a flood of bad requests cannot fill the stream.
pub const REFUSALS_PER_MINUTE: u32 = 30;

/// Counts refusals per client address in one-minute windows.
#[derive(Debug, Default)]
pub struct RefusalLimiter {
    counts: prolo_bus::per_minute::PerMinute<Option<std::net::IpAddr>>,
}

impl RefusalLimiter {
    /// Whether one more refusal from `source` is recorded now.
    pub fn allow(&self, source: Option<std::net::IpAddr>) -> bool {
        let count = self.counts.count(source);
        if count == REFUSALS_PER_MINUTE + 1 {
            tracing::warn!(
                ?source,
                "refused requests beyond {REFUSALS_PER_MINUTE} a minute from one address are not recorded until the minute ends"
            );
        }
        count <= REFUSALS_PER_MINUTE
    }
}

/// A refused request, as the access log records it.
#[derive(Debug, Clone)]
pub struct Refusal {
    /// Who asked: a known principal, or `None` (recorded as `anonymous`).
    pub principal: Option<Principal>,
    /// The clinic the path names, or [`prolo_schemas::ClinicId::unscoped`].
    pub clinic: ClinicId,
    /// The path, without its query string.
    pub path: String,
    /// 401 or 403.
    pub status: u16,
    /// The error code and message answered.
    pub reason: String,
    /// The client's address.
    pub source_address: Option<String>,
}

/// One read, as the access log records it.
#[derive(Debug, Clone)]
pub struct Read {
    /// The query run.
    pub query: QueryKind,
    /// Its parameters as given.
    pub parameters: BTreeMap<String, String>,
    /// The patient the query names, if any.
    pub patient_id: Option<PatientId>,
    /// Every patient whose data the answer carries.
    pub exposed: BTreeSet<PatientId>,
    /// How many records it held.
    pub records: u64,
}

/// Records reads.
#[derive(Clone)]
pub struct AccessLog {
    publisher: Publisher,
}

impl AccessLog {
    /// An access log publishing with `publisher`.
    pub fn new(publisher: Publisher) -> Self {
        Self { publisher }
    }

    /// Records `read` by `principal` in `clinic`: one event, or several of
    /// at most [`ACCESS_PATIENTS_PER_EVENT_MAX`] exposed patients each. The
    /// first event's id.
    pub async fn record(
        &self,
        principal: &Principal,
        clinic: &ClinicId,
        read: &Read,
    ) -> Result<uuid::Uuid, ApiError> {
        self.record_all(principal, clinic, read, None).await
    }

    /// Records that the streamed export recorded as `first` ended early:
    /// the same read (so every exposed patient's log shows it), with the
    /// rows sent, the total and why, caused by `first`.
    pub async fn record_cut(
        &self,
        principal: &Principal,
        clinic: &ClinicId,
        mut read: Read,
        first: uuid::Uuid,
        cut: crate::render::Cut,
    ) -> Result<uuid::Uuid, ApiError> {
        read.records = cut.rows_sent;
        let incomplete = IncompleteExport {
            records_total: cut.rows_total,
            reason: prolo_schemas::clean_text(&cut.reason, SHORT_TEXT_MAX_CHARS),
        };
        self.record_all(principal, clinic, &read, Some((first, incomplete)))
            .await
    }

    async fn record_all(
        &self,
        principal: &Principal,
        clinic: &ClinicId,
        read: &Read,
        cut: Option<(uuid::Uuid, IncompleteExport)>,
    ) -> Result<uuid::Uuid, ApiError> {
        let exposed: Vec<PatientId> = read.exposed.iter().cloned().collect();
        let mut chunks: Vec<&[PatientId]> = exposed.chunks(ACCESS_PATIENTS_PER_EVENT_MAX).collect();
        if chunks.is_empty() {
            chunks.push(&[]);
        }
        // Published together, acknowledged together: a large answer waits
        // for one round of fsyncs, not one per event.
        let ids =
            futures::future::try_join_all(chunks.into_iter().map(|chunk| {
                self.record_one(principal, clinic, read, chunk.to_vec(), cut.clone())
            }))
            .await?;
        count_access("recorded", ids.len() as u64);
        ids.first()
            .copied()
            .ok_or_else(|| ApiError::Internal("no access event recorded".into()))
    }

    /// Records a refused request (`access.refused`). The token is never part of it.
    pub async fn refused(&self, refusal: Refusal) -> Result<(), ApiError> {
        let (principal_id, role) = match &refusal.principal {
            Some(p) => (p.id.clone(), Some(p.role)),
            None => (prolo_schemas::PrincipalId::anonymous(), None),
        };
        let actor = actor(principal_id.as_str(), role);
        let payload = prolo_schemas::AccessRefused {
            principal_id,
            role,
            path: prolo_schemas::clean_text(&refusal.path, 500),
            status: refusal.status,
            reason: prolo_schemas::clean_text(&refusal.reason, SHORT_TEXT_MAX_CHARS),
            source_address: refusal.source_address.clone(),
        };
        self.publish(&refusal.clinic, actor, payload.into(), None)
            .await
            .map(|_| count_access("refused", 1))
    }

    async fn record_one(
        &self,
        principal: &Principal,
        clinic: &ClinicId,
        read: &Read,
        exposed_patients: Vec<PatientId>,
        cut: Option<(uuid::Uuid, IncompleteExport)>,
    ) -> Result<uuid::Uuid, ApiError> {
        let (causation, incomplete) = cut.unzip();
        let payload = AccessRecorded {
            principal_id: principal.id.clone(),
            role: principal.role,
            query: read.query.name().to_owned(),
            parameters: read.parameters.clone(),
            patient_id: read.patient_id.clone(),
            exposed_patients,
            records_returned: read.records,
            incomplete,
        };
        let actor = actor(principal.id.as_str(), Some(principal.role));
        let event_id = self
            .publish(clinic, actor, payload.into(), causation)
            .await?;
        tracing::info!(
            %event_id,
            principal = %principal.id,
            query = read.query.name(),
            records = read.records,
            "access recorded"
        );
        Ok(event_id)
    }

    /// Stamps `payload` as an event of this service, now, filed under
    /// `clinic` (caused by `causation`, if given), and publishes it; its id
    /// once JetStream stored it.
    async fn publish(
        &self,
        clinic: &ClinicId,
        actor: Actor,
        payload: prolo_schemas::Payload,
        causation: Option<uuid::Uuid>,
    ) -> Result<uuid::Uuid, ApiError> {
        let now = Utc::now();
        let event_id = uuid::Uuid::now_v7();
        let envelope = Envelope {
            event_id,
            clinic_id: clinic.clone(),
            patient_id: None,
            occurred_at: now,
            recorded_at: now,
            actor,
            // The principal was proven by its API token, not by an
            // identity provider's: nothing to show as proof here.
            actor_proof: None,
            source: SOURCE.to_owned(),
            correlation_id: event_id.to_string(),
            causation_id: causation,
            payload,
        };
        self.publisher
            .publish(&envelope)
            .await
            .map(|recorded| recorded.event_id)
            .map_err(|e| ApiError::NotAudited(e.to_string()))
    }
}

/// The actor of an access event: the principal, in its role (a service
/// role for an unknown principal).
fn actor(id: &str, role: Option<AccessRole>) -> Actor {
    Actor {
        id: id.to_owned(),
        role: match role {
            Some(AccessRole::Compliance) => ActorRole::Compliance,
            Some(AccessRole::Safety) => ActorRole::Safety,
            Some(AccessRole::Service) | None => ActorRole::Service,
        },
    }
}

/// Counts access events written, by kind (`recorded`, `refused`).
fn count_access(kind: &str, n: u64) {
    let Some(metrics) = prolo_bus::metrics::active() else {
        return;
    };
    metrics
        .access_events
        .get_or_create(&prolo_bus::metrics::AccessLabels {
            kind: kind.to_owned(),
        })
        .inc_by(n);
}
