//! Which service records which event type, and on which command subject.
//!
//! One table: the services, the CLI and the deploy permissions all read it.
//! Command subjects live under `prolo.cmd.`, outside the stream's
//! `clinic.>`, so a request is never itself stored as an event, and carry the
//! clinic (`prolo.cmd.<clinic>.<verb>`), so that NATS permissions can limit a
//! clinic's systems to their own clinic.

use prolo_schemas::EventType;

/// Prefix of every command subject.
pub const COMMAND_PREFIX: &str = "prolo.cmd";

/// A recording service: its name and the event types it records.
#[derive(Debug, Clone, Copy)]
pub struct ServiceSpec {
    /// Service name (NATS services API `name`, and the events' `source`).
    pub name: &'static str,
    /// One line for `$SRV.INFO`.
    pub description: &'static str,
    /// The commands it answers.
    pub commands: &'static [Command],
    /// Whether it answers the batch command ([`BATCH_VERB`]) instead.
    pub batch: bool,
}

/// One command: the subject suffix and the event type it records.
#[derive(Debug, Clone, Copy)]
pub struct Command {
    /// Suffix after `prolo.cmd.<clinic>.`, e.g. `injection.give`.
    pub verb: &'static str,
    /// What a successful request records.
    pub event_type: EventType,
}

impl Command {
    /// The subject for `clinic`, e.g. `prolo.cmd.riverside.injection.give`.
    pub fn subject(&self, clinic: &str) -> String {
        format!("{COMMAND_PREFIX}.{clinic}.{}", self.verb)
    }

    /// What the service listens on below `prolo.cmd`: every clinic's.
    pub fn endpoint_subject(&self) -> String {
        format!("*.{}", self.verb)
    }

    /// Endpoint name for the services API (no dots allowed there).
    pub fn endpoint_name(&self) -> String {
        self.verb.replace('.', "_")
    }
}

const fn cmd(verb: &'static str, event_type: EventType) -> Command {
    Command { verb, event_type }
}

/// Credentials of practitioners.
pub const PRACTITIONERS: ServiceSpec = ServiceSpec {
    name: "practitioners",
    description: "Records practitioner credentials",
    commands: &[cmd(
        "practitioner.credential",
        EventType::PractitionerCredentialed,
    )],
    batch: false,
};

/// Consent given and withdrawn.
pub const CONSENT: ServiceSpec = ServiceSpec {
    name: "consent",
    description: "Records informed consent and its withdrawal",
    commands: &[
        cmd("consent.give", EventType::ConsentGiven),
        cmd("consent.withdraw", EventType::ConsentWithdrawn),
    ],
    batch: false,
};

/// Examination, imaging, candidacy.
pub const EXAMINATION: ServiceSpec = ServiceSpec {
    name: "examination",
    description: "Records examinations, imaging studies, candidacy decisions, pre-procedure screening and patient-reported outcomes",
    commands: &[
        cmd("examination.record", EventType::ExaminationDone),
        cmd("imaging.record", EventType::ImagingRecorded),
        cmd("candidacy.assess", EventType::CandidacyAssessed),
        cmd("screening.record", EventType::ScreeningDone),
        cmd("outcome.report", EventType::OutcomeReported),
    ],
    batch: false,
};

/// Plans, injections, adjunct therapy.
pub const TREATMENT: ServiceSpec = ServiceSpec {
    name: "treatment",
    description: "Records treatment plans, time-outs, injections, observation, adjunct therapy and the end of a series",
    commands: &[
        cmd("treatment.plan", EventType::TreatmentPlanned),
        cmd("procedure.time_out", EventType::ProcedureTimeOut),
        cmd("injection.give", EventType::InjectionGiven),
        cmd("observation.complete", EventType::ObservationCompleted),
        cmd("series.complete", EventType::SeriesCompleted),
        cmd(
            "adjunct_therapy.recommend",
            EventType::AdjunctTherapyRecommended,
        ),
    ],
    batch: false,
};

/// Adverse events and lot recalls.
pub const SAFETY: ServiceSpec = ServiceSpec {
    name: "safety",
    description: "Records adverse events, their follow-up and lot recalls",
    commands: &[
        cmd("adverse_event.report", EventType::AdverseEventReported),
        cmd("adverse_event.update", EventType::AdverseEventUpdated),
        cmd("lot.recall", EventType::LotRecalled),
    ],
    batch: false,
};

/// Corrections and entered-in-error marks.
pub const CORRECTIONS: ServiceSpec = ServiceSpec {
    name: "corrections",
    description: "Records corrections, entered-in-error marks and electronic signatures; originals are never changed",
    commands: &[
        cmd("record.correct", EventType::RecordCorrected),
        cmd(
            "record.mark_entered_in_error",
            EventType::RecordEnteredInError,
        ),
        cmd("record.sign", EventType::RecordSigned),
    ],
    batch: false,
};

/// The verb of the batch command: `prolo.cmd.<clinic>.batch` records up to
/// 1,000 events of any types in one request (back-fill, migration).
pub const BATCH_VERB: &str = "batch";

/// Events of any type, many per request (see [`crate::batch`]).
pub const BATCH: ServiceSpec = ServiceSpec {
    name: prolo_schemas::BACKFILL_SOURCE,
    description: "Records up to 1,000 events of any types in one request (back-fill, migration)",
    commands: &[],
    batch: true,
};

/// Every recording service.
pub const ALL_SERVICES: &[ServiceSpec] = &[
    PRACTITIONERS,
    CONSENT,
    EXAMINATION,
    TREATMENT,
    SAFETY,
    CORRECTIONS,
    BATCH,
];

/// The batch command's subject for `clinic`.
pub fn batch_subject(clinic: &str) -> String {
    format!("{COMMAND_PREFIX}.{clinic}.{BATCH_VERB}")
}

/// The command whose verb is `verb` (e.g. `injection.give`).
pub fn command_by_verb(verb: &str) -> Option<&'static Command> {
    ALL_SERVICES
        .iter()
        .flat_map(|service| service.commands)
        .find(|c| c.verb == verb)
}

/// The clinic a command subject is sent for (`prolo.cmd.<clinic>.…`).
pub fn clinic_of(subject: &str) -> Option<&str> {
    subject
        .strip_prefix(COMMAND_PREFIX)?
        .strip_prefix('.')?
        .split('.')
        .next()
        .filter(|clinic| !clinic.is_empty())
}

/// The command that records `event_type`.
pub fn command_for(event_type: EventType) -> Option<(&'static ServiceSpec, &'static Command)> {
    ALL_SERVICES.iter().find_map(|service| {
        service
            .commands
            .iter()
            .find(|c| c.event_type == event_type)
            .map(|c| (service, c))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_clinical_event_type_has_exactly_one_command() {
        for event_type in EventType::ALL.iter().filter(|t| t.is_clinical()) {
            let count = ALL_SERVICES
                .iter()
                .flat_map(|s| s.commands)
                .filter(|c| c.event_type == *event_type)
                .count();
            assert_eq!(count, 1, "{event_type}");
        }
    }

    #[test]
    fn command_subjects_are_outside_the_stream() {
        for (_, command) in EventType::ALL.iter().filter_map(|t| command_for(*t)) {
            assert!(!command.subject("riverside").starts_with("clinic."));
        }
    }

    #[test]
    fn the_clinic_is_read_back_from_the_subject() {
        let (_, command) = command_for(EventType::InjectionGiven).unwrap_or_else(|| panic!());
        let subject = command.subject("riverside");
        assert_eq!(subject, "prolo.cmd.riverside.injection.give");
        assert_eq!(clinic_of(&subject), Some("riverside"));
        assert_eq!(clinic_of("prolo.cmd"), None);
        assert_eq!(clinic_of("other.cmd.riverside.x"), None);
    }
}
