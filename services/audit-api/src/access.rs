//! Reads are audited like writes: every read of patient data that succeeds
//! is recorded as an `access.recorded` event before the data is served,
//! naming every patient whose data the answer carries (in several events of
//! at most [`ACCESS_PATIENTS_PER_EVENT_MAX`] patients when there are many).
//! If the record cannot be stored, the data is not served.

use std::collections::{BTreeMap, BTreeSet};

use prolo_schemas::bounds::ACCESS_PATIENTS_PER_EVENT_MAX;

use chrono::Utc;
use prolo_bus::Publisher;
use prolo_schemas::{AccessRecorded, AccessRole, Actor, ActorRole, ClinicId, Envelope, PatientId};

use crate::{
    auth::{Principal, QueryKind},
    error::ApiError,
};

/// The service name in `source`.
pub const SOURCE: &str = "audit-api";

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
    /// at most [`ACCESS_PATIENTS_PER_EVENT_MAX`] exposed patients each.
    pub async fn record(
        &self,
        principal: &Principal,
        clinic: &ClinicId,
        read: Read,
    ) -> Result<(), ApiError> {
        let exposed: Vec<PatientId> = read.exposed.iter().cloned().collect();
        let mut chunks: Vec<&[PatientId]> = exposed.chunks(ACCESS_PATIENTS_PER_EVENT_MAX).collect();
        if chunks.is_empty() {
            chunks.push(&[]);
        }
        for chunk in chunks {
            self.record_one(principal, clinic, &read, chunk.to_vec())
                .await?;
        }
        Ok(())
    }

    async fn record_one(
        &self,
        principal: &Principal,
        clinic: &ClinicId,
        read: &Read,
        exposed_patients: Vec<PatientId>,
    ) -> Result<(), ApiError> {
        let now = Utc::now();
        let event_id = uuid::Uuid::now_v7();
        let envelope = Envelope {
            event_id,
            clinic_id: clinic.clone(),
            patient_id: None,
            occurred_at: now,
            recorded_at: now,
            actor: Actor {
                id: principal.id.to_string(),
                role: match principal.role {
                    AccessRole::Compliance => ActorRole::Compliance,
                    AccessRole::Safety => ActorRole::Safety,
                    AccessRole::Service => ActorRole::Service,
                },
            },
            source: SOURCE.to_owned(),
            correlation_id: event_id.to_string(),
            causation_id: None,
            payload: AccessRecorded {
                principal_id: principal.id.clone(),
                role: principal.role,
                query: read.query.name().to_owned(),
                parameters: read.parameters.clone(),
                patient_id: read.patient_id.clone(),
                exposed_patients,
                records_returned: read.records,
            }
            .into(),
        };
        let recorded = self
            .publisher
            .publish(&envelope)
            .await
            .map_err(|e| ApiError::NotAudited(e.to_string()))?;
        tracing::info!(
            event_id = %recorded.event_id,
            principal = %principal.id,
            query = read.query.name(),
            records = read.records,
            "access recorded"
        );
        Ok(())
    }
}
