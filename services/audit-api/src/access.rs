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

    /// Records that `principal` ran `query` in `clinic` and got `records`
    /// records carrying the data of the `exposed` patients (`patient_id`:
    /// the one the query names, if any).
    pub async fn record(
        &self,
        principal: &Principal,
        clinic: &ClinicId,
        query: QueryKind,
        parameters: BTreeMap<String, String>,
        patient_id: Option<PatientId>,
        exposed: BTreeSet<PatientId>,
        records: u64,
    ) -> Result<(), ApiError> {
        let exposed: Vec<PatientId> = exposed.into_iter().collect();
        let mut chunks: Vec<&[PatientId]> = exposed.chunks(ACCESS_PATIENTS_PER_EVENT_MAX).collect();
        if chunks.is_empty() {
            chunks.push(&[]);
        }
        for chunk in chunks {
            self.record_one(
                principal,
                clinic,
                query,
                parameters.clone(),
                patient_id.clone(),
                chunk.to_vec(),
                records,
            )
            .await?;
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)] // one event's fields, named
    async fn record_one(
        &self,
        principal: &Principal,
        clinic: &ClinicId,
        query: QueryKind,
        parameters: BTreeMap<String, String>,
        patient_id: Option<PatientId>,
        exposed_patients: Vec<PatientId>,
        records: u64,
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
                query: query.name().to_owned(),
                parameters,
                patient_id,
                exposed_patients,
                records_returned: records,
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
            query = query.name(),
            records,
            "access recorded"
        );
        Ok(())
    }
}
