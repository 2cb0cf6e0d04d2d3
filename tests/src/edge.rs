//! A hub for clinic edges: a nats-server with its own JetStream domain
//! (`hub`), a leaf node port, an admin user, and for each clinic the leaf
//! user `edge-<clinic>` (password `pw-<clinic>`) as `prolo_bus::edge`
//! defines it.

use std::path::Path;

use prolo_bus::{edge, local_server::ServerOptions};

use crate::{HarnessError, NatsServer};

/// The hub's admin, as `user:password`.
pub const HUB_ADMIN: &str = "admin:admin-pw";

/// Starts a hub whose leaf node port is `leaf_port`, its configuration in `dir`.
pub async fn start_hub(
    dir: &Path,
    leaf_port: u16,
    clinics: &[&str],
) -> Result<NatsServer, HarnessError> {
    let users: Vec<String> = clinics
        .iter()
        .map(|c| {
            edge::hub_leaf_user(
                c,
                &edge::edge_domain(c),
                &format!("edge-{c}"),
                &format!("\"pw-{c}\""),
            )
        })
        .collect();
    let conf = dir.join("hub.conf");
    std::fs::write(
        &conf,
        format!(
            "authorization {{ users = [\n{{ user: admin, password: \"admin-pw\" }}\n{}\n] }}\n\
             leafnodes {{ listen: \"127.0.0.1:{leaf_port}\" }}\n",
            users.join("\n")
        ),
    )
    .map_err(|e| HarnessError::Failed(format!("writing {}: {e}", conf.display())))?;
    let options = ServerOptions {
        include: Some(conf),
        jetstream_domain: Some("hub".into()),
        ..ServerOptions::default()
    };
    NatsServer::start_with(options, Some(HUB_ADMIN)).await
}
