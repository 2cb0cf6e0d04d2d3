//! The users of the nats-server `up` starts: one per part of the system,
//! each with the least it needs ([`prolo_recorder::permissions`]), their
//! passwords made once under the data directory (mode 0600). What `up`
//! hands out can never publish on the stream: `nats-url` sends commands
//! (the clinic systems' user), `nats-reader-url` reads; only
//! `nats-admin-url`, the operator's, could, and what it publishes bypasses
//! the recording services' seal and is quarantined.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result};
use prolo_recorder::{
    ALL_SERVICES,
    permissions::{self, Permissions},
};

use crate::private::{create_private_dir, random_hex, write_private};

/// The operator: stream administration, backup, restore.
pub const ADMIN: &str = "admin";
/// The clinic systems (and the CLI's `record`): commands only.
pub const CLINIC_SYSTEMS: &str = "clinic-systems";
/// Followers of the trail (`prolo-audit tail`).
pub const READER: &str = "reader";
/// The audit API and its fold.
pub const AUDIT_API: &str = "audit-api";

/// Every user and its permissions (`None`: all, the operator's).
fn users() -> Vec<(&'static str, Option<Permissions>)> {
    let mut users: Vec<(&'static str, Option<Permissions>)> = ALL_SERVICES
        .iter()
        .map(|spec| (spec.name, Some(permissions::recording_service(spec))))
        .collect();
    users.push((AUDIT_API, Some(permissions::audit_api(AUDIT_API, true))));
    users.push((
        CLINIC_SYSTEMS,
        Some(permissions::clinic_system(CLINIC_SYSTEMS, "*")),
    ));
    users.push((READER, Some(permissions::reader(READER))));
    users.push((ADMIN, None));
    users
}

/// The users and where the server's configuration of them is.
pub struct LocalUsers {
    passwords: BTreeMap<String, String>,
    /// The server's `authorization` block (mode 0600: it holds passwords).
    pub auth_conf: PathBuf,
}

/// The URL files `up` writes for the CLI.
pub struct UrlFiles {
    /// Commands only (`record`, `backfill`, `demo`).
    pub clinic: PathBuf,
    /// Reads only (`tail`).
    pub reader: PathBuf,
    /// The operator's (`backup`, `restore`, `edge attach`).
    pub admin: PathBuf,
}

impl LocalUsers {
    /// Reads the passwords kept in `nats-passwords.json` under `data_dir`
    /// (making those missing) and writes the server's `nats-auth.conf`.
    pub fn load_or_create(data_dir: &Path) -> Result<Self> {
        create_private_dir(data_dir)?;
        let file = data_dir.join("nats-passwords.json");
        let mut passwords: BTreeMap<String, String> = match std::fs::read_to_string(&file) {
            Ok(text) => serde_json::from_str(&text)
                .with_context(|| format!("{} is not the passwords up keeps", file.display()))?,
            Err(_) => BTreeMap::new(),
        };
        let users = users();
        let mut changed = false;
        for (user, _) in &users {
            if passwords.get(*user).is_none_or(|p| p.len() < 32) {
                passwords.insert((*user).to_owned(), random_hex(24)?);
                changed = true;
            }
        }
        if changed {
            write_private(&file, &serde_json::to_string_pretty(&passwords)?)?;
        }
        let mut conf = String::from(
            "# Written by prolo-audit up: the users of the nats-server it starts,\n\
             # each with the least it needs (services/recorder/src/permissions.rs).\n\
             authorization {\n  users = [\n",
        );
        for (user, permissions) in &users {
            let password = &passwords[*user];
            conf.push_str(&format!(
                "    {{ user: {}, password: {}",
                quoted(user),
                quoted(password)
            ));
            if let Some(p) = permissions {
                conf.push_str(&format!(
                    ",\n      permissions: {{\n        publish: {{ allow: {} }}\n        subscribe: {{ allow: {} }}\n{}      }}",
                    list(&p.publish),
                    list(&p.subscribe),
                    if p.allow_responses {
                        "        allow_responses: true\n"
                    } else {
                        ""
                    }
                ));
            }
            conf.push_str(" }\n");
        }
        conf.push_str("  ]\n}\n");
        let auth_conf = data_dir.join("nats-auth.conf");
        write_private(&auth_conf, &conf)?;
        Ok(Self {
            passwords,
            auth_conf: auth_conf.canonicalize().unwrap_or(auth_conf),
        })
    }

    /// `user:password`, for probes that authenticate as the operator.
    pub fn admin_auth(&self) -> String {
        format!("{ADMIN}:{}", self.passwords[ADMIN])
    }

    /// The URL `user` connects with.
    pub fn url(&self, user: &str, port: u16) -> String {
        let password = self.passwords.get(user).map_or("", String::as_str);
        format!("nats://{user}:{password}@127.0.0.1:{port}")
    }

    /// Writes the URLs the CLI uses (mode 0600).
    pub fn write_urls(&self, data_dir: &Path, port: u16) -> Result<UrlFiles> {
        let files = UrlFiles {
            clinic: data_dir.join("nats-url"),
            reader: data_dir.join("nats-reader-url"),
            admin: data_dir.join("nats-admin-url"),
        };
        write_private(&files.clinic, &self.url(CLINIC_SYSTEMS, port))?;
        write_private(&files.reader, &self.url(READER, port))?;
        write_private(&files.admin, &self.url(ADMIN, port))?;
        Ok(files)
    }
}

fn quoted(text: &str) -> String {
    serde_json::Value::from(text).to_string()
}

fn list(subjects: &[String]) -> String {
    let quoted: Vec<String> = subjects.iter().map(|s| quoted(s)).collect();
    format!("[{}]", quoted.join(", "))
}
