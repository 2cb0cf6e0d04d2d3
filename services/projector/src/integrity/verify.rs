//! Verifying the read models against the stream: the hash chain recomputed
//! from the stream and every stored event compared with the database; the
//! first sequence that differs is named.

use async_nats::jetstream;

use crate::{error::ProjectorError, integrity::chain, project::read_stream, store::Store};

/// The result of `verify`.
#[derive(
    Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
pub struct VerifyReport {
    /// Sequences compared.
    pub checked: u64,
    /// The first sequence that differs, and how; `None` when all agree.
    pub first_difference: Option<(u64, String)>,
    /// Chain head recomputed from the stream, hex.
    pub head: String,
    /// The last sequence it covered.
    #[serde(default)]
    pub through: u64,
    /// A full pass from sequence 1 (else from the last verified sequence on).
    #[serde(default)]
    pub full: bool,
    /// When it ran (this machine's clock).
    #[serde(default)]
    pub at: Option<chrono::DateTime<chrono::Utc>>,
}

/// Recomputes the hash chain from the stream and compares it, and every
/// stored event, with the database. Names the first sequence that differs.
pub async fn verify(
    js: &jetstream::Context,
    store: &Store,
) -> Result<VerifyReport, ProjectorError> {
    verify_from(js, store, 0).await
}

/// [`verify`] from the sequence after `from` (0: a full pass), starting
/// from the link the database holds there (which the last pass checked).
pub async fn verify_from(
    js: &jetstream::Context,
    store: &Store,
    from: u64,
) -> Result<VerifyReport, ProjectorError> {
    let applied = store.applied_seq()?;
    if let crate::integrity::consistency::Consistency::Diverged {
        reason,
        first_missing_seq,
    } = crate::integrity::consistency::check(js, store).await?
    {
        let report = VerifyReport {
            checked: 0,
            first_difference: Some((first_missing_seq, reason)),
            head: String::new(),
            through: applied,
            full: true,
            at: Some(chrono::Utc::now()),
        };
        store.status_put("last_verify", &report)?;
        return Ok(report);
    }
    let (from, mut head) = match store.event(from)? {
        Some(record) if from > 0 && from <= applied => (from, record.chain),
        _ => (0, chain::GENESIS),
    };
    let mut checked = 0u64;
    let mut first_difference: Option<(u64, String)> = None;
    let mut records = store.record_reader();
    read_stream(js, from + 1, applied, 1000, |batch| {
        for m in &batch {
            if first_difference.is_some() {
                break;
            }
            head = chain::link(&head, m.seq, &m.payload);
            checked += 1;
            let stored = match records.event(m.seq) {
                Ok(Some(stored)) => stored,
                Ok(None) => {
                    first_difference = Some((m.seq, "stored event is missing".into()));
                    break;
                }
                Err(e) => {
                    first_difference = Some((m.seq, format!("stored event is unreadable: {e}")));
                    break;
                }
            };
            if stored.chain != head {
                first_difference = Some((
                    m.seq,
                    "chain link differs from the one recomputed from the stream".into(),
                ));
            } else if stored.raw != m.payload.as_ref() {
                first_difference = Some((m.seq, "stored event differs from the stream".into()));
            }
        }
        std::future::ready(Ok(()))
    })
    .await?;
    let report = VerifyReport {
        checked,
        first_difference,
        head: chain::hex(&head),
        through: applied,
        full: from == 0,
        at: Some(chrono::Utc::now()),
    };
    store.status_put("last_verify", &report)?;
    Ok(report)
}
