//! The NATS permissions of each part of prolo-audit, from the command
//! table: what `up` gives the users of the server it starts. A deployment's
//! `deploy/nats/auth.conf` grants the same by hand.
//!
//! Only the recording services may publish on the stream's subjects, each
//! its own event types; clinic systems may only send commands; readers only
//! read. Whoever holds none of these (the stream's admin) and publishes
//! anyway is caught by the seal ([`prolo_bus::seal`]).

use prolo_schemas::{EntityKind, EventType};

use crate::commands::{BATCH_VERB, COMMAND_PREFIX, ServiceSpec};

/// A user's permissions: the subjects it may publish to and subscribe to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permissions {
    /// Subjects it may publish to.
    pub publish: Vec<String>,
    /// Subjects it may subscribe to.
    pub subscribe: Vec<String>,
    /// Whether it may answer requests on the reply subjects it is given.
    pub allow_responses: bool,
}

/// The stream subjects of `event_type`, any clinic and entity:
/// `clinic.*.patient.*.injection.given`.
pub fn event_subjects(event_type: EventType) -> String {
    let entity = match event_type.entity_kind() {
        EntityKind::Patient => "patient",
        EntityKind::Practitioner => "practitioner",
        EntityKind::Lot => "lot",
        EntityKind::Principal => "principal",
        // Filed under the entity of the event it corrects.
        EntityKind::TargetOf => "*",
    };
    format!(
        "{}.*.{entity}.*.{}",
        prolo_schemas::subject::ROOT,
        event_type.as_str()
    )
}

/// What a recording service checks or creates on the server: the stream
/// and its idempotency-key bucket.
const RECORDING_JETSTREAM: &[&str] = &[
    "$JS.API.INFO",
    "$JS.API.STREAM.INFO.CLINIC_EVENTS",
    "$JS.API.STREAM.CREATE.CLINIC_EVENTS",
    "$JS.API.STREAM.INFO.KV_PROLO_IDEMPOTENCY",
    "$JS.API.STREAM.CREATE.KV_PROLO_IDEMPOTENCY",
    "$JS.API.STREAM.UPDATE.KV_PROLO_IDEMPOTENCY",
    "$JS.API.DIRECT.GET.KV_PROLO_IDEMPOTENCY.>",
    "$JS.API.STREAM.MSG.GET.KV_PROLO_IDEMPOTENCY",
    "$KV.PROLO_IDEMPOTENCY.>",
];

/// What a fold reads: the stream, through its durable consumer.
const FOLD_JETSTREAM: &[&str] = &[
    "$JS.API.INFO",
    "$JS.API.STREAM.INFO.CLINIC_EVENTS",
    "$JS.API.STREAM.MSG.GET.CLINIC_EVENTS",
    "$JS.API.CONSUMER.*.CLINIC_EVENTS",
    "$JS.API.CONSUMER.*.CLINIC_EVENTS.>",
    "$JS.API.CONSUMER.DURABLE.CREATE.CLINIC_EVENTS.>",
    "$JS.API.CONSUMER.MSG.NEXT.CLINIC_EVENTS.>",
    "$JS.ACK.CLINIC_EVENTS.>",
    "$JS.FC.CLINIC_EVENTS.>",
];

/// Reading the stream with ephemeral (ordered) consumers and single
/// messages only: no way to delete or reposition the folds' durable ones.
const READ_EPHEMERAL: &[&str] = &[
    "$JS.API.INFO",
    "$JS.API.STREAM.INFO.CLINIC_EVENTS",
    "$JS.API.STREAM.MSG.GET.CLINIC_EVENTS",
    "$JS.API.DIRECT.GET.CLINIC_EVENTS.>",
    "$JS.API.CONSUMER.CREATE.CLINIC_EVENTS",
    "$JS.API.CONSUMER.CREATE.CLINIC_EVENTS.>",
    "$JS.API.CONSUMER.INFO.CLINIC_EVENTS.>",
    "$JS.API.CONSUMER.MSG.NEXT.CLINIC_EVENTS.>",
    "$JS.FC.CLINIC_EVENTS.>",
];

/// Where `user` reads its replies (`prolo_bus::connect` sets the prefix).
fn inbox(user: &str) -> String {
    format!("{}.>", prolo_bus::connect::inbox_prefix(user))
}

fn strings(subjects: &[&str]) -> Vec<String> {
    subjects.iter().map(|s| (*s).to_owned()).collect()
}

/// A recording service: answers its own commands for any clinic and
/// publishes only its own event types (the batch service: every clinical
/// type), and the `access.refused` of the commands it refuses.
pub fn recording_service(spec: &ServiceSpec) -> Permissions {
    let mut publish = strings(RECORDING_JETSTREAM);
    publish.push(event_subjects(EventType::AccessRefused));
    let mut subscribe = vec!["$SRV.>".to_owned(), inbox(spec.name)];
    if spec.batch {
        publish.extend(
            EventType::ALL
                .iter()
                .filter(|t| t.is_clinical())
                .map(|t| event_subjects(*t)),
        );
        subscribe.push(format!("{COMMAND_PREFIX}.*.{BATCH_VERB}"));
    } else {
        publish.extend(spec.commands.iter().map(|c| event_subjects(c.event_type)));
        // A signature is checked against the signed event as stored.
        if spec
            .commands
            .iter()
            .any(|c| c.event_type == EventType::RecordSigned)
        {
            publish.extend(strings(READ_EPHEMERAL));
        }
        subscribe.extend(
            spec.commands
                .iter()
                .map(|c| format!("{COMMAND_PREFIX}.{}", c.endpoint_subject())),
        );
    }
    Permissions {
        publish,
        subscribe,
        allow_responses: true,
    }
}

/// The audit API: folds the stream, records its own reads (`access.*`)
/// and, when `publishes_derived` (it is the deployment's one publishing
/// fold, as in `up`), findings, signals and checkpoints.
pub fn audit_api(user: &str, publishes_derived: bool) -> Permissions {
    let mut publish = strings(FOLD_JETSTREAM);
    publish.extend(
        [EventType::AccessRecorded, EventType::AccessRefused]
            .into_iter()
            .map(event_subjects),
    );
    if publishes_derived {
        publish.extend(strings(&[
            "prolo.chain.checkpoint",
            "prolo.finding.>",
            "prolo.signal.>",
        ]));
    }
    Permissions {
        publish,
        subscribe: vec![inbox(user)],
        allow_responses: false,
    }
}

/// A clinic system (an EHR, the CLI's `record`): sends commands of
/// `clinics` (`*` for every clinic) and may see which services answer; it
/// can never publish on the stream.
pub fn clinic_system(user: &str, clinic: &str) -> Permissions {
    Permissions {
        publish: vec![
            format!("{COMMAND_PREFIX}.{clinic}.>"),
            "$SRV.PING.>".to_owned(),
            "$SRV.INFO.>".to_owned(),
        ],
        subscribe: vec![inbox(user)],
        allow_responses: false,
    }
}

/// A follower of the trail (another clinic system, `prolo-audit tail`):
/// reads events live or from the stream, findings and signals; publishes
/// nothing but its reads of the stream.
pub fn reader(user: &str) -> Permissions {
    let publish = strings(READ_EPHEMERAL);
    let mut subscribe = strings(&[
        "clinic.>",
        "prolo.finding.>",
        "prolo.signal.>",
        "prolo.chain.checkpoint",
    ]);
    subscribe.push(inbox(user));
    Permissions {
        publish,
        subscribe,
        allow_responses: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::{ALL_SERVICES, BATCH, CONSENT};

    #[test]
    fn a_recording_service_publishes_only_its_own_event_types() {
        let consent = recording_service(&CONSENT);
        let events: Vec<&String> = consent
            .publish
            .iter()
            .filter(|s| s.starts_with("clinic."))
            .collect();
        assert_eq!(
            events,
            vec![
                "clinic.*.principal.*.access.refused",
                "clinic.*.patient.*.consent.given",
                "clinic.*.patient.*.consent.withdrawn"
            ]
        );
        assert!(
            consent
                .subscribe
                .contains(&"prolo.cmd.*.consent.give".to_owned())
        );
        let batch = recording_service(&BATCH);
        assert!(
            batch
                .publish
                .contains(&"clinic.*.*.*.record.signed".to_owned())
        );
        assert!(!batch.publish.iter().any(|s| s.contains("access.recorded")));
        for spec in ALL_SERVICES {
            assert!(
                !recording_service(spec)
                    .publish
                    .iter()
                    .any(|s| s.ends_with('>') && s.starts_with("clinic")),
                "{}",
                spec.name
            );
        }
    }

    #[test]
    fn clinic_systems_and_readers_never_publish_on_the_stream() {
        for permissions in [clinic_system("ehr", "*"), reader("reader")] {
            assert!(
                !permissions
                    .publish
                    .iter()
                    .any(|s| s.starts_with("clinic.") || s == ">"),
                "{permissions:?}"
            );
        }
    }
}
