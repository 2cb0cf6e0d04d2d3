//! The `CLINIC_EVENTS` stream: the source of truth, defined in one place.
//!
//! Append-only is enforced by the broker, not by our good behaviour: the
//! stream denies message deletion and purging, keeps events without an age,
//! count or size limit, uses file storage and limits retention (work-queue or
//! interest retention would delete events once consumed). On the newer
//! servers (2.11, 2.12) it also refuses what they added that could make a
//! stored event vanish or be written later: per-message TTLs, delete
//! markers, scheduled messages, counters and the asynchronous persist mode
//! (which acknowledges before writing). A stream that breaks any of these is
//! refused, never "fixed" silently. It allows atomic batch publish (2.12):
//! a batch of events is stored whole or not at all, for one fsync.
//! `deploy/nats/stream.md` documents the same definition for operators.

use std::time::Duration;

use async_nats::jetstream::{
    self,
    stream::{Config, PersistenceMode, RetentionPolicy, StorageType},
};

/// The stream name.
pub const STREAM_NAME: &str = "CLINIC_EVENTS";

/// Every event subject starts with `clinic.`; the stream takes them all.
pub const STREAM_SUBJECTS: &str = "clinic.>";

/// The shortest duplicate window accepted: a caller retrying after a timeout
/// within this window is deduplicated by the broker.
pub const MIN_DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

/// What may vary between deployments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamSettings {
    /// 1 on a single machine, 3 in a cluster.
    pub replicas: usize,
    /// How long JetStream remembers a `Nats-Msg-Id` for deduplication. Longer
    /// survives longer outages; the broker keeps every id of the window in
    /// memory.
    pub duplicate_window: Duration,
    /// At a clinic's edge (see [`crate::edge`]), the one clinic whose events
    /// the local stream takes (`clinic.<id>.>`); `None` at the hub (`clinic.>`).
    pub clinic: Option<String>,
}

impl Default for StreamSettings {
    fn default() -> Self {
        Self {
            replicas: 1,
            duplicate_window: MIN_DUPLICATE_WINDOW,
            clinic: None,
        }
    }
}

/// The stream configuration for `settings`.
pub fn config(settings: &StreamSettings) -> Config {
    Config {
        name: STREAM_NAME.to_owned(),
        description: Some("prolo-audit: every clinical fact, append-only".to_owned()),
        subjects: vec![
            settings
                .clinic
                .as_deref()
                .map_or_else(|| STREAM_SUBJECTS.to_owned(), edge_subjects),
        ],
        storage: StorageType::File,
        retention: RetentionPolicy::Limits,
        max_age: Duration::ZERO,
        max_messages: -1,
        max_bytes: -1,
        max_messages_per_subject: -1,
        deny_delete: true,
        deny_purge: true,
        allow_rollup: false,
        duplicate_window: settings.duplicate_window,
        num_replicas: settings.replicas,
        persist_mode: Some(PersistenceMode::Default),
        allow_message_ttl: false,
        subject_delete_marker_ttl: None,
        allow_message_schedules: false,
        allow_message_counter: false,
        allow_atomic_publish: true,
        ..Default::default()
    }
}

/// The subjects of `clinic`'s events: all a clinic edge's stream takes (see [`crate::edge`]).
pub fn edge_subjects(clinic: &str) -> String {
    format!("clinic.{clinic}.>")
}

/// The clinic of an edge stream's subjects (`clinic.<id>.>`), if they are that.
pub fn clinic_of_edge_subjects(subjects: &str) -> Option<&str> {
    let clinic = subjects.strip_prefix("clinic.")?.strip_suffix(".>")?;
    prolo_schemas::check_token("clinic_id", clinic)
        .is_ok()
        .then_some(clinic)
}

/// Why the stream cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// The existing stream could lose, rewrite or forget events.
    #[error("stream {STREAM_NAME} is unsafe for an audit trail: {}", .0.join("; "))]
    Unsafe(Vec<String>),
    /// The duplicate window asked for is below the minimum.
    #[error("a duplicate window of {0:?} is below the minimum {MIN_DUPLICATE_WINDOW:?}")]
    WindowTooShort(Duration),
    /// JetStream could not be reached or refused the request.
    #[error("JetStream: {0}")]
    JetStream(String),
}

/// What is wrong with an existing stream's configuration; empty when safe.
pub fn unsafe_settings(config: &Config) -> Vec<String> {
    let mut problems = Vec::new();
    let mut require = |ok: bool, what: &str| {
        if !ok {
            problems.push(what.to_owned());
        }
    };
    require(
        config.deny_delete,
        "it allows deleting messages (deny_delete is off)",
    );
    require(config.deny_purge, "it allows purging (deny_purge is off)");
    require(!config.allow_rollup, "it allows rollups, which purge");
    require(
        config.storage == StorageType::File,
        "it does not use file storage",
    );
    require(
        config.retention == RetentionPolicy::Limits,
        "its retention removes consumed messages (must be limits)",
    );
    require(config.max_age.is_zero(), "it has an age limit");
    require(config.max_messages <= 0, "it has a message count limit");
    require(config.max_bytes <= 0, "it has a size limit");
    require(
        config.max_messages_per_subject <= 0,
        "it has a per-subject limit",
    );
    require(
        config
            .subjects
            .iter()
            .any(|s| s == STREAM_SUBJECTS || clinic_of_edge_subjects(s).is_some()),
        "it takes neither clinic.> nor, at a clinic's edge, clinic.<its clinic>.>",
    );
    require(
        config.duplicate_window >= MIN_DUPLICATE_WINDOW,
        "its duplicate window is shorter than 2 minutes",
    );
    require(
        config.persist_mode != Some(PersistenceMode::Async),
        "its persist mode is async (acknowledges before writing)",
    );
    require(
        !config.allow_message_ttl,
        "it allows per-message TTLs, which expire events",
    );
    require(
        config.subject_delete_marker_ttl.is_none(),
        "it places delete markers",
    );
    require(
        !config.allow_message_schedules,
        "it allows scheduled messages, stored later than published",
    );
    require(
        !config.allow_message_counter,
        "it is a counter stream, which folds messages into sums",
    );
    problems
}

/// Creates the stream when absent; checks it when present, refusing one that
/// allows delete or purge or could otherwise lose events.
pub async fn ensure_stream(
    js: &jetstream::Context,
    settings: &StreamSettings,
) -> Result<jetstream::stream::Stream, StreamError> {
    if settings.duplicate_window < MIN_DUPLICATE_WINDOW {
        return Err(StreamError::WindowTooShort(settings.duplicate_window));
    }
    let mut stream = js
        .get_or_create_stream(config(settings))
        .await
        .map_err(|e| StreamError::JetStream(e.to_string()))?;
    let info = stream
        .info()
        .await
        .map_err(|e| StreamError::JetStream(e.to_string()))?;
    let problems = unsafe_settings(&info.config);
    if problems.is_empty() {
        Ok(stream)
    } else {
        Err(StreamError::Unsafe(problems))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_definition_is_safe() {
        assert!(unsafe_settings(&config(&StreamSettings::default())).is_empty());
    }

    #[test]
    fn a_stream_that_allows_delete_or_purge_is_named_unsafe() {
        let mut c = config(&StreamSettings::default());
        c.deny_delete = false;
        c.deny_purge = false;
        c.max_age = Duration::from_secs(86_400);
        let problems = unsafe_settings(&c);
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems[0].contains("deleting"));
        assert!(problems[1].contains("purging"));
    }

    #[test]
    fn what_newer_servers_added_to_lose_events_is_named_unsafe() {
        let mut c = config(&StreamSettings::default());
        c.persist_mode = Some(PersistenceMode::Async);
        c.allow_message_ttl = true;
        c.subject_delete_marker_ttl = Some(Duration::from_secs(60));
        c.allow_message_schedules = true;
        c.allow_message_counter = true;
        let problems = unsafe_settings(&c);
        assert_eq!(problems.len(), 5, "{problems:?}");
        assert!(problems[0].contains("async"));
    }
}
