//! Which recording services' seals a fold trusts: the flags every fold
//! binary shares (`prolo-projector`, `prolo-audit-api`).

use std::{path::PathBuf, sync::Arc};

use prolo_bus::{Keyring, seal::KeyError};

/// The keyring flags.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct SealArgs {
    /// The recording services' public keys, one base64 line each (what
    /// `prolo-audit seal-key new` prints). A message none of them sealed is
    /// quarantined and raises `unproven_publisher`. Without it seals are
    /// not checked, and the status says so.
    #[arg(long, global = true, env = "PROLO_SEAL_KEYRING")]
    pub seal_keyring: Option<PathBuf>,
    /// The first stream sequence that must be sealed: a stream recorded
    /// before sealing was turned on keeps its history as it is.
    #[arg(
        long,
        global = true,
        env = "PROLO_SEALED_FROM_SEQ",
        default_value_t = 1
    )]
    pub sealed_from_seq: u64,
}

impl SealArgs {
    /// The keyring, when one is given.
    pub fn keyring(&self) -> Result<Option<Arc<Keyring>>, KeyError> {
        let Some(path) = &self.seal_keyring else {
            tracing::warn!(
                "no seal keyring (PROLO_SEAL_KEYRING): events are not checked for a recording service's seal, so anyone who can publish on the stream writes the trail"
            );
            return Ok(None);
        };
        let mut keyring = Keyring::load(path)?;
        keyring.sealed_from = self.sealed_from_seq.max(1);
        tracing::info!(keys = ?keyring.ids(), sealed_from = keyring.sealed_from, "checking every event's seal");
        Ok(Some(Arc::new(keyring)))
    }
}
