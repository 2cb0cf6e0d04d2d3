//! Graceful shutdown, shared by every service.

use tokio::sync::watch;

/// A handle that tells a task when to stop taking new work.
///
/// Cheap to clone; every clone sees the same signal. Tasks race
/// [`Shutdown::wait`] against their work with `tokio::select!`.
#[derive(Clone, Debug)]
pub struct Shutdown {
    rx: watch::Receiver<bool>,
}

/// The sending side: [`Trigger::fire`] stops every [`Shutdown`] made from it.
#[derive(Debug)]
pub struct Trigger {
    tx: watch::Sender<bool>,
}

impl Trigger {
    /// Tells every [`Shutdown`] to stop.
    pub fn fire(&self) {
        // send_replace never fails, even when no receiver is left.
        self.tx.send_replace(true);
    }
}

impl Shutdown {
    /// A new signal and the trigger that fires it.
    pub fn new() -> (Trigger, Shutdown) {
        let (tx, rx) = watch::channel(false);
        (Trigger { tx }, Shutdown { rx })
    }

    /// A signal fired by SIGTERM or ctrl-c.
    pub fn on_signals() -> Shutdown {
        let (trigger, shutdown) = Shutdown::new();
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("shutdown signal received; finishing in-flight work");
            trigger.fire();
        });
        shutdown
    }

    /// Whether shutdown has been asked for.
    pub fn is_fired(&self) -> bool {
        *self.rx.borrow()
    }

    /// Resolves once shutdown is asked for (at once if it already was).
    pub async fn wait(&mut self) {
        // An error means the trigger was dropped without firing: treat that
        // as a shutdown too, since nothing can fire it any more.
        let _ = self.rx.wait_for(|fired| *fired).await;
    }
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
