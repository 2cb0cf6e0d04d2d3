//! Refused commands on the trail. A command refused 401 (no token proves
//! who acts) or 403 (an actor the token does not prove, a role the policy
//! does not allow, a signature that is not the signer's) is recorded as
//! `access.refused`, filed under the clinic its subject names, with who
//! was proven (and the proof) or `anonymous`: an attempt is as visible to
//! the compliance officer as an act (`GET /v1/clinics/{clinic}/access-refused`).
//!
//! A flood of refused commands must not become a flood of events: at most
//! [`PER_MINUTE`] refusals are recorded per service and minute; the rest are
//! counted in the log.

use prolo_bus::{Publisher, per_minute::PerMinute};
use prolo_schemas::{
    AccessRefused, Actor, ActorRole, ClinicId, Envelope, PrincipalId, bounds::SHORT_TEXT_MAX_CHARS,
    clean_text,
};

use crate::{identity::Proven, reply::ErrorReply};

/// Refusals recorded per service and minute, at most.
pub const PER_MINUTE: u32 = 600;

/// Records a service's refused commands.
pub struct Refusals {
    publisher: Publisher,
    source: &'static str,
    /// Refusals counted this minute.
    counted: PerMinute<()>,
}

impl Refusals {
    /// Refusals of the service `source`, recorded with `publisher`.
    pub fn new(publisher: Publisher, source: &'static str) -> Self {
        Self {
            publisher,
            source,
            counted: PerMinute::default(),
        }
    }

    /// Records `reply` to the command sent on `subject`, when it is a 401 or
    /// 403, by whoever `proven` names. Best effort: a refusal not recorded is
    /// logged, and the caller still gets its answer.
    pub async fn record(&self, subject: &str, proven: Option<&Proven>, reply: &ErrorReply) {
        let status = reply.error.status;
        if !matches!(status, 401 | 403) || !self.within_budget() {
            return;
        }
        let envelope = self.envelope(subject, proven, reply);
        if let Err(e) = self.publisher.publish(&envelope).await {
            tracing::warn!(error = %e, subject, code = %reply.error.code, "a refused command was not recorded");
        }
    }

    fn within_budget(&self) -> bool {
        let count = self.counted.count(());
        if count == PER_MINUTE + 1 {
            tracing::warn!(
                service = self.source,
                "more than {PER_MINUTE} refused commands this minute: the rest are not recorded"
            );
        }
        count <= PER_MINUTE
    }

    /// The `access.refused` event of a refusal.
    fn envelope(&self, subject: &str, proven: Option<&Proven>, reply: &ErrorReply) -> Envelope {
        // prolo.cmd.<clinic>.<verb>: a clinic that is not one is filed unscoped.
        let clinic: ClinicId = subject
            .split('.')
            .nth(2)
            .and_then(|c| c.parse().ok())
            .unwrap_or_else(ClinicId::unscoped);
        let principal: PrincipalId = proven
            .and_then(|p| p.actor.id.parse().ok())
            .unwrap_or_else(PrincipalId::anonymous);
        let actor = proven.map_or_else(
            || Actor {
                id: principal.to_string(),
                role: ActorRole::Service,
            },
            |p| p.actor.clone(),
        );
        let payload = AccessRefused {
            principal_id: principal,
            role: None,
            path: clean_text(subject, 500),
            status: reply.error.status,
            reason: clean_text(
                &format!("{}: {}", reply.error.code, reply.error.message),
                SHORT_TEXT_MAX_CHARS,
            ),
            source_address: None,
        };
        let now = chrono::Utc::now();
        let event_id = uuid::Uuid::now_v7();
        Envelope {
            event_id,
            clinic_id: clinic,
            patient_id: None,
            occurred_at: now,
            recorded_at: now,
            actor,
            actor_proof: proven.map(|p| p.proof().clone()),
            source: self.source.to_owned(),
            correlation_id: event_id.to_string(),
            causation_id: None,
            payload: payload.into(),
        }
    }
}
