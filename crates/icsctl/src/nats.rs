//! icsctl on the bus: how its commands that read JetStream (`bus-status`, `store restore`)
//! connect, and `icsctl dev nkeys`, the per-service NATS identities of the local stack.
//!
//! Each service proves itself to nats-server with its own user nkey: the service keeps the
//! seed (mode 0600), the server is given only the public key (`deploy/nats/permissions.conf`
//! reads them from `ICS_NATS_<USER>_NKEY`), so no password sits in a committed file and a
//! leaked server configuration lets nobody connect.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;

/// The NATS users of `deploy/nats/permissions.conf`, one nkey each.
pub const USERS: [&str; 4] = ["ledgerd", "positiond", "oversightd", "reader"];

/// Where and as whom icsctl reads the bus.
#[derive(Clone, Debug, Args)]
pub struct NatsArgs {
    /// The NATS server (`nats://host:port`; a password user may still put
    /// `user:password@` in it).
    #[arg(long, env = "ICS_NATS_URL", default_value = "nats://127.0.0.1:14222")]
    pub nats_url: String,
    /// The file holding the nkey seed of the NATS user to connect as: the `reader` user
    /// reads the stream and nothing else (the local stack's: `.local/nkeys/reader.nk`).
    #[arg(long, env = "ICS_NATS_NKEY_SEED_FILE")]
    pub nats_nkey_seed_file: Option<PathBuf>,
    /// The subject prefix replies come back on: the one that user may subscribe to
    /// (`_INBOX_<user>` in permissions.conf).
    #[arg(long, env = "ICS_NATS_INBOX_PREFIX", default_value = "_INBOX_reader")]
    pub nats_inbox_prefix: String,
}

impl NatsArgs {
    /// A client connected as these credentials (`name` shows in the server's `/connz`).
    pub async fn connect(&self, name: &str) -> anyhow::Result<async_nats::Client> {
        let credentials =
            bus::credentials(self.nats_nkey_seed_file.as_deref(), &self.nats_inbox_prefix)?;
        bus::connect_with(&self.nats_url, name, &credentials)
            .await
            .context("connecting to NATS")
    }
}

/// `icsctl dev nkeys`: a user nkey for each of [`USERS`] in `dir` — `<user>.nk` (the seed,
/// mode 0600, for the service) and `<user>.pub` (the public key, for nats-server). A user
/// that has one keeps it unless `force`.
pub fn dev_nkeys(dir: &Path, force: bool) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut made = Vec::new();
    for user in USERS {
        let seed_file = dir.join(format!("{user}.nk"));
        let public_file = dir.join(format!("{user}.pub"));
        if seed_file.exists() && public_file.exists() && !force {
            continue;
        }
        let pair = nkeys::KeyPair::new_user();
        let seed = pair
            .seed()
            .map_err(|e| anyhow::anyhow!("encoding an nkey seed: {e}"))?;
        crate::keys::write_private(&seed_file, &format!("{seed}\n"))?;
        std::fs::write(&public_file, format!("{}\n", pair.public_key()))
            .with_context(|| format!("writing {}", public_file.display()))?;
        made.push(user);
    }
    if made.is_empty() {
        println!(
            "nkeys for {} already in {} (--force to replace)",
            USERS.join(", "),
            dir.display()
        );
    } else {
        println!(
            "wrote the NATS nkeys of {} in {} (<user>.nk: the seed, keep it secret; <user>.pub: \
             for nats-server)",
            made.join(", "),
            dir.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_user_gets_a_seed_only_it_can_read_and_its_public_key() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        dev_nkeys(dir.path(), false)?;
        let mut publics = Vec::new();
        for user in USERS {
            let seed = std::fs::read_to_string(dir.path().join(format!("{user}.nk")))?;
            let public = std::fs::read_to_string(dir.path().join(format!("{user}.pub")))?;
            let credentials = bus::Credentials::nkey_seed(seed.trim(), user)?;
            assert_eq!(credentials.public_key(), Some(public.trim()));
            assert!(public.starts_with('U'), "{public}");
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let mode = std::fs::metadata(dir.path().join(format!("{user}.nk")))?
                    .permissions()
                    .mode();
                assert_eq!(mode & 0o777, 0o600, "{user}.nk");
            }
            publics.push(public);
        }
        publics.sort();
        publics.dedup();
        assert_eq!(publics.len(), USERS.len(), "every user has its own key");

        // Run again: kept, not replaced.
        let before = std::fs::read_to_string(dir.path().join("reader.nk"))?;
        dev_nkeys(dir.path(), false)?;
        assert_eq!(
            std::fs::read_to_string(dir.path().join("reader.nk"))?,
            before
        );
        dev_nkeys(dir.path(), true)?;
        assert_ne!(
            std::fs::read_to_string(dir.path().join("reader.nk"))?,
            before
        );
        Ok(())
    }
}
