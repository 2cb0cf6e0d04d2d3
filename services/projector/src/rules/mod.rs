//! The policy: which findings an event raises and which open findings it
//! resolves. Pure functions of the read models and one event, with no store,
//! no broker, no clock: the fold loads what they need, asks, and writes what
//! they answer ([`crate::fold`]). A rule is tested here without sled or NATS.
//!
//! - [`findings`]: the rules' names, severities and settings, and what a
//!   finding records;
//! - [`timing`]: when an event was documented against when it happened;
//! - [`injection`]: an injection against consent, credentials, plan, lots
//!   and the session's anaesthetic;
//! - [`adverse_events`]: an adverse event's link and the injection it is
//!   attributed to;
//! - [`references`]: corrections and updates that point outside their patient;
//! - [`standing`]: what a patient or practitioner held at a time, and which
//!   later events resolve an open finding;
//! - [`signals`]: the groups' counts, the signals they raise, and the
//!   state machine (raise, clear, explained by a more specific signal) over
//!   those counts;
//! - [`disproportionality`]: the signal statistics.

pub mod adverse_events;
pub mod disproportionality;
pub mod findings;
pub mod injection;
pub mod references;
pub mod signals;
pub mod standing;
#[cfg(test)]
mod tests;
pub mod timing;

use uuid::Uuid;

use self::findings::Rule;
pub use self::{adverse_events::*, injection::*, references::*, standing::*, timing::*};

/// A finding the policy asks for, about the event being folded.
#[derive(Debug, Clone, PartialEq)]
pub struct Draft {
    /// The rule broken.
    pub rule: Rule,
    /// The events that prove it; the first is the one it is about.
    pub evidence: Vec<Uuid>,
    /// What is wrong, in words.
    pub detail: String,
    /// The practitioner it concerns, when it concerns one.
    pub practitioner: Option<String>,
    /// The injection's site, for consent-scope findings.
    pub site_key: Option<String>,
}

impl Draft {
    pub(crate) fn about(rule: Rule, event: Uuid, detail: String) -> Draft {
        Draft {
            rule,
            evidence: vec![event],
            detail,
            practitioner: None,
            site_key: None,
        }
    }
}

pub(crate) fn ms(t: chrono::DateTime<chrono::Utc>) -> i64 {
    t.timestamp_millis()
}
