//! Clinics that keep recording when their line to the group is down.
//!
//! A clinic runs its own nats-server as a **leaf node** of the hub, with its
//! own **JetStream domain** (`clinic-<id>` by default) and its own
//! `CLINIC_EVENTS` stream that takes only its clinic's subjects
//! (`clinic.<id>.>`, the same append-only definition as the hub's). The
//! recording services at the clinic publish to it and reply after its local
//! acknowledgement, so recording needs no link to the hub.
//!
//! The hub's `CLINIC_EVENTS` **sources** every clinic's stream across
//! domains ([`hub_source`], [`attach`]). When a link returns, the hub's
//! sourcing consumer resumes after the last edge sequence it stored (the
//! server reads it back from the `Nats-Stream-Source` header of its last
//! sourced message, also after a crash), so what was recorded offline
//! arrives once, in the clinic's order; a repeat within the duplicate window
//! is also dropped by the `Nats-Msg-Id` the edge stored.
//!
//! The leaf connection's user at the hub ([`hub_leaf_user`]) carries nothing
//! but the sourcing traffic of its own clinic: it may send only on its
//! clinic's delivery prefix (`prolo.edge.<id>.deliver.>`) and the replies to
//! the hub's consumer requests, and receive only its own domain's API and
//! flow control. It may not publish `clinic.>`, commands or inboxes at the
//! hub, so an edge cannot write another clinic's events, nor any event,
//! into the hub except through the hub's own source for it, whose filter is
//! its clinic's subjects.

use std::time::Duration;

use async_nats::jetstream::{
    self,
    stream::{External, Source},
};

use crate::stream::{STREAM_NAME, StreamError};
pub use crate::stream::{clinic_of_edge_subjects, edge_subjects};

/// The header JetStream puts on every message it stores by sourcing.
pub const SOURCE_HEADER: &str = "Nats-Stream-Source";

/// The JetStream domain of `clinic`'s edge server, unless configured otherwise.
pub fn edge_domain(clinic: &str) -> String {
    format!("clinic-{clinic}")
}

/// Where the edge's consumer delivers to the hub: one prefix per clinic, so
/// that a leaf user can be allowed its own deliveries and no other's.
pub fn delivery_prefix(clinic: &str) -> String {
    format!("prolo.edge.{clinic}.deliver")
}

/// The JetStream API of the edge in `domain`, as reached from the hub.
pub fn api_prefix(domain: &str) -> String {
    format!("$JS.{domain}.API")
}

/// The hub's source for `clinic`'s edge stream in `domain`.
pub fn hub_source(clinic: &str, domain: &str) -> Source {
    Source {
        name: STREAM_NAME.to_owned(),
        filter_subject: Some(edge_subjects(clinic)),
        external: Some(External {
            api_prefix: api_prefix(domain),
            delivery_prefix: Some(delivery_prefix(clinic)),
        }),
        ..Default::default()
    }
}

/// What [`attach`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attached {
    /// The source was added to the hub's stream.
    Added,
    /// The hub's stream already sourced this clinic's edge the same way.
    AlreadyAttached,
}

/// Adds `clinic`'s edge (in `domain`) to the sources of the hub's
/// `CLINIC_EVENTS`. Idempotent; a clinic already sourced another way (other
/// domain or prefix) is refused rather than sourced twice.
pub async fn attach(
    js: &jetstream::Context,
    clinic: &str,
    domain: &str,
) -> Result<Attached, StreamError> {
    prolo_schemas::check_token("clinic_id", clinic)
        .map_err(|e| StreamError::JetStream(e.to_string()))?;
    let mut stream = js.get_stream(STREAM_NAME).await.map_err(js_err)?;
    let mut config = stream.info().await.map_err(js_err)?.config.clone();
    let wanted = hub_source(clinic, domain);
    let sources = config.sources.get_or_insert_with(Vec::new);
    if let Some(existing) = sources
        .iter()
        .find(|s| s.filter_subject == wanted.filter_subject)
    {
        return if existing.external == wanted.external && existing.name == wanted.name {
            Ok(Attached::AlreadyAttached)
        } else {
            Err(StreamError::JetStream(format!(
                "the hub already sources clinic {clinic} from {:?}; detach it first",
                existing.external.as_ref().map(|e| &e.api_prefix)
            )))
        };
    }
    sources.push(wanted);
    js.update_stream(config).await.map_err(js_err)?;
    Ok(Attached::Added)
}

/// A JetStream failure as a [`StreamError`].
fn js_err(e: impl std::fmt::Display) -> StreamError {
    StreamError::JetStream(e.to_string())
}

/// How far the hub is behind one clinic's edge.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub struct SourceLag {
    /// The clinic whose edge this is (from the source's filter).
    pub clinic: String,
    /// Messages at the edge the hub has not stored yet, as last reported.
    pub lag: u64,
    /// Milliseconds since the hub last heard from the edge; `None` when it
    /// has not (the link is down or the source is being set up).
    pub active_ms: Option<u64>,
}

/// The sourcing lag of every clinic edge the hub's stream sources.
pub async fn source_lags(js: &jetstream::Context) -> Result<Vec<SourceLag>, StreamError> {
    let mut stream = js.get_stream(STREAM_NAME).await.map_err(js_err)?;
    let info = stream.info().await.map_err(js_err)?;
    let mut lags: Vec<SourceLag> = info
        .sources
        .iter()
        .map(|s| SourceLag {
            clinic: s
                .filter_subject
                .as_deref()
                .and_then(clinic_of_edge_subjects)
                .unwrap_or(&s.name)
                .to_owned(),
            lag: s.lag,
            active_ms: s
                .active
                .map(|d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        })
        .collect();
    lags.sort_by(|a, b| a.clinic.cmp(&b.clinic));
    Ok(lags)
}

/// Where a sourced message came from, read from its [`SOURCE_HEADER`]
/// (`<stream>[:<api hash>] <sequence> <filter> <destination> <subject> …`).
/// The stream, hash and filter are written by the hub from its own source
/// configuration, not by the edge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourcedFrom {
    /// The source's index name at the hub (stream name and a hash of the
    /// edge's API prefix): one per clinic edge.
    pub source: String,
    /// The message's sequence in the edge's stream.
    pub edge_seq: u64,
    /// The hub's filter for this source (`clinic.<id>.>`).
    pub filter: String,
}

impl SourcedFrom {
    /// Parses the header's value; `None` when it is not one.
    pub fn parse(value: &str) -> Option<Self> {
        let mut parts = value.split(' ');
        let source = parts.next().filter(|s| !s.is_empty())?.to_owned();
        let edge_seq = parts.next()?.parse().ok()?;
        let filter = parts.next()?.to_owned();
        Some(Self {
            source,
            edge_seq,
            filter,
        })
    }

    /// The clinic the hub sources from this edge, when the filter names one.
    pub fn clinic(&self) -> Option<&str> {
        clinic_of_edge_subjects(&self.filter)
    }
}

/// The hub's user for `clinic`'s leaf connection, as a nats-server
/// `authorization.users` entry: a leaf connection only, carrying only its
/// own sourcing traffic (see the module's doc). `password` is written as
/// given (e.g. `$PROLO_EDGE_C1_PASSWORD` or a bcrypted hash).
pub fn hub_leaf_user(clinic: &str, domain: &str, user: &str, password: &str) -> String {
    format!(
        "{{\n  user: \"{user}\", password: {password}\n  allowed_connection_types: [\"LEAFNODE\"]\n  permissions: {{\n    # what the edge may send into the hub: its own deliveries and the replies to the hub's consumer requests\n    publish: {{ allow: [\"{deliver}.>\", \"$JSC.R.>\"] }}\n    # what the hub may send to the edge: its domain's JetStream API and flow control\n    subscribe: {{ allow: [\"{api}.>\", \"$JS.FC.>\"] }}\n  }}\n}}",
        deliver = delivery_prefix(clinic),
        api = api_prefix(domain),
    )
}

/// The `leafnodes` block of a clinic's edge server: one remote, the hub's
/// leaf node port, as `nats-leaf://<user>:<password>@<host>:<port>` (the
/// hub's [`hub_leaf_user`] for this clinic). The leaf reconnects on its own
/// when the line returns.
pub fn leaf_remote(hub_leaf_url: &str) -> String {
    format!(
        "leafnodes {{\n  reconnect: \"1s\"\n  remotes = [ {{ url: {} }} ]\n}}",
        serde_json::to_string(hub_leaf_url).unwrap_or_default()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_edge_stream_takes_its_clinic_only() {
        assert_eq!(edge_subjects("C1"), "clinic.C1.>");
        assert_eq!(clinic_of_edge_subjects("clinic.C1.>"), Some("C1"));
        for not_one in [
            "clinic.>",
            "clinic.*.>",
            "clinic.a.b.>",
            "clinic..>",
            "other.C1.>",
        ] {
            assert_eq!(clinic_of_edge_subjects(not_one), None, "{not_one}");
        }
    }

    #[test]
    fn the_source_header_names_the_edge_sequence_and_filter() {
        let from =
            SourcedFrom::parse("CLINIC_EVENTS:Xyz12 42 clinic.C1.> > clinic.C1.patient.P1.x")
                .expect("a header");
        assert_eq!(from.source, "CLINIC_EVENTS:Xyz12");
        assert_eq!(from.edge_seq, 42);
        assert_eq!(from.clinic(), Some("C1"));
        assert_eq!(SourcedFrom::parse(""), None);
        assert_eq!(SourcedFrom::parse("S notanumber f"), None);
    }

    #[test]
    fn a_leaf_user_may_not_publish_events_or_inboxes() {
        let user = hub_leaf_user("C1", "clinic-C1", "edge-C1", "$P");
        assert!(user.contains("\"prolo.edge.C1.deliver.>\""), "{user}");
        assert!(user.contains("\"$JS.clinic-C1.API.>\""), "{user}");
        assert!(user.contains("LEAFNODE"), "{user}");
        assert!(
            !user.contains("clinic.>") && !user.contains("_INBOX"),
            "{user}"
        );
    }
}
