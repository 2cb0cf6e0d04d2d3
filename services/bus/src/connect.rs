//! Connecting to NATS the way every service does.

use std::time::Duration;

/// The URL used when `NATS_URL` is not set.
pub const DEFAULT_NATS_URL: &str = "nats://127.0.0.1:4222";

/// Connects to `url` as `name` (shown in the server's connection list).
/// `url` may list several servers separated by commas (a cluster's nodes):
/// the client fails over between them. A `user:password@` in the first URL
/// authenticates the connection (this client version does not read it from
/// the URL by itself), and its replies then come to the user's own inbox
/// prefix, [`inbox_prefix`]: a user may subscribe only to its own inbox, never
/// to `_INBOX.>`, where it would receive what is delivered to others.
///
/// The client reconnects forever: a service outlives broker restarts, and
/// requests made while the broker is away fail with "not stored, retry"
/// rather than the service dying. State changes are logged.
pub async fn connect(
    url: &str,
    name: &str,
) -> Result<async_nats::Client, async_nats::ConnectError> {
    let service = name.to_owned();
    let urls: Vec<&str> = url.split(',').map(str::trim).collect();
    let mut options = async_nats::ConnectOptions::new();
    if let Some((user, password)) = credentials(urls[0]) {
        options = options
            .custom_inbox_prefix(inbox_prefix(&user))
            .user_and_password(user, password);
    }
    options
        .name(name)
        .max_reconnects(None)
        .connection_timeout(Duration::from_secs(5))
        .event_callback(move |event| {
            let service = service.clone();
            async move {
                match event {
                    // One line per connection: `up` opens a dozen; debug.
                    async_nats::Event::Connected => tracing::debug!(%service, "connected to NATS"),
                    async_nats::Event::Disconnected => {
                        tracing::warn!(%service, "disconnected from NATS; reconnecting")
                    }
                    async_nats::Event::Closed => {
                        tracing::debug!(%service, "NATS connection closed")
                    }
                    other => tracing::warn!(%service, event = %other, "NATS client event"),
                }
            }
        })
        .connect(urls)
        .await
}

/// The inbox prefix of `user`: `_INBOX_<user>` (its replies arrive on
/// `_INBOX_<user>.…`, which `deploy/nats/auth.conf` lets only that user read).
pub fn inbox_prefix(user: &str) -> String {
    format!("_INBOX_{user}")
}

/// The `user:password` of a `nats://user:password@host:port` URL.
pub fn credentials(url: &str) -> Option<(String, String)> {
    let addr: async_nats::ServerAddr = url.parse().ok()?;
    Some((addr.username()?.to_owned(), addr.password()?.to_owned()))
}
