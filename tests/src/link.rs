//! A network link that a test can cut and restore: a TCP relay on a free
//! loopback port in front of another port (e.g. the hub's leaf node port).
//!
//! Cut, it closes every connection it carries and refuses new ones at once,
//! as a clinic's line going down does to its leaf connection; both servers
//! keep running.

use std::sync::{
    Arc, Mutex,
    atomic::{AtomicBool, Ordering},
};

use tokio::{net::TcpListener, net::TcpStream, task::AbortHandle};

use crate::HarnessError;

/// A relay from [`Link::port`] to a target port on 127.0.0.1.
pub struct Link {
    port: u16,
    up: Arc<AtomicBool>,
    carried: Arc<Mutex<Vec<AbortHandle>>>,
    accept: AbortHandle,
}

impl Link {
    /// Starts relaying a free port to `target`; the link is up.
    pub async fn start(target: u16) -> Result<Self, HarnessError> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| HarnessError::Failed(format!("link: bind: {e}")))?;
        let port = listener
            .local_addr()
            .map_err(|e| HarnessError::Failed(format!("link: {e}")))?
            .port();
        let up = Arc::new(AtomicBool::new(true));
        let carried: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        let accept = tokio::spawn({
            let (up, carried) = (up.clone(), carried.clone());
            async move {
                while let Ok((mut inbound, _)) = listener.accept().await {
                    if !up.load(Ordering::SeqCst) {
                        continue; // dropped: the line is down
                    }
                    let relay = tokio::spawn(async move {
                        if let Ok(mut outbound) = TcpStream::connect(("127.0.0.1", target)).await {
                            let _ =
                                tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                        }
                    });
                    if let Ok(mut carried) = carried.lock() {
                        carried.retain(|h| !h.is_finished());
                        carried.push(relay.abort_handle());
                    }
                }
            }
        })
        .abort_handle();
        Ok(Self {
            port,
            up,
            carried,
            accept,
        })
    }

    /// The port to connect to instead of the target.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Cuts the link: every carried connection is closed, new ones refused.
    pub fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        if let Ok(mut carried) = self.carried.lock() {
            for relay in carried.drain(..) {
                relay.abort();
            }
        }
    }

    /// Restores it: new connections are carried again.
    pub fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}
