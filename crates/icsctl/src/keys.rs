//! `icsctl keys generate` and `icsctl token issue`: the ICS's Ed25519 signing key and the
//! bearer tokens it signs.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum Keys {
    /// Make an Ed25519 key pair: DIR/NAME.pem (private, PKCS#8, mode 0600) and
    /// DIR/NAME.pub.pem (public, SPKI) — the public key is what services, auditors and the
    /// regulator are given. NAME `ics-signing` signs tokens; `ledger-checkpoint` is ledgerd's
    /// checkpoint key (its `checkpoint_key`).
    Generate {
        #[arg(long, default_value = ".local/keys")]
        dir: PathBuf,
        /// The key pair's file name.
        #[arg(long, default_value = "ics-signing")]
        name: String,
        /// Replace a key pair already there.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum Token {
    /// Sign a bearer token; prints it (send it as `authorization: Bearer <token>`, or give it
    /// to icsctl with --token / ICS_TOKEN).
    Issue {
        /// The ICS's private signing key (from `icsctl keys generate`).
        #[arg(long, default_value = ".local/keys/ics-signing.pem")]
        key: PathBuf,
        /// The system the token is for.
        #[arg(long, default_value = "kav")]
        system: String,
        /// member-finance, system-finance, regulator, auditor or admin.
        #[arg(long)]
        role: auth::Role,
        /// The member a member-finance token acts for.
        #[arg(long)]
        member: Option<String>,
        /// Who the bearer is: recorded as the actor of what it posts.
        #[arg(long)]
        subject: String,
        /// When it expires: a span from now (`8h`, `30d`) or a time (`2027-03-31T23:59:59Z`).
        #[arg(long, default_value = "8h")]
        expires: String,
    },
}

pub fn keys(command: Keys) -> anyhow::Result<()> {
    match command {
        Keys::Generate { dir, name, force } => generate(&dir, &name, force),
    }
}

fn generate(dir: &Path, name: &str, force: bool) -> anyhow::Result<()> {
    if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
        anyhow::bail!("--name must be a plain file name, not {name:?}");
    }
    let private = dir.join(format!("{name}.pem"));
    let public = dir.join(format!("{name}.pub.pem"));
    if private.exists() && !force {
        println!(
            "a key pair {name} is already in {} (--force to replace)",
            dir.display()
        );
        return Ok(());
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let (private_pem, public_pem) = auth::generate_key_pair()?;
    write_private(&private, &private_pem)?;
    std::fs::write(&public, public_pem).with_context(|| format!("writing {}", public.display()))?;
    println!(
        "wrote {} (private; keep it secret) and {} (public)",
        private.display(),
        public.display()
    );
    Ok(())
}

#[cfg(unix)]
pub(crate) fn write_private(path: &Path, pem: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.write_all(pem.as_bytes())?;
    Ok(())
}

#[cfg(not(unix))]
pub(crate) fn write_private(path: &Path, pem: &str) -> anyhow::Result<()> {
    std::fs::write(path, pem).with_context(|| format!("writing {}", path.display()))
}

pub fn token(command: Token) -> anyhow::Result<()> {
    match command {
        Token::Issue {
            key,
            system,
            role,
            member,
            subject,
            expires,
        } => {
            let now = jiff::Timestamp::now();
            let lifetime = lifetime(&expires, now)?;
            let pem = std::fs::read_to_string(&key)
                .with_context(|| format!("reading {}", key.display()))?;
            let issuer = auth::Issuer::from_pem(&pem)?;
            let system =
                domain::SystemId::new(system).map_err(|e| anyhow::anyhow!("--system {e}"))?;
            let principal = auth::Principal::new(subject, system, role, member.as_deref())
                .map_err(|e| anyhow::anyhow!(e))?;
            println!("{}", issuer.issue(&principal, now.as_second(), lifetime)?);
            Ok(())
        }
    }
}

/// Seconds from `now` until `expires` (a span like `8h` or a time).
fn lifetime(expires: &str, now: jiff::Timestamp) -> anyhow::Result<i64> {
    if let Ok(at) = expires.parse::<jiff::Timestamp>() {
        return Ok(at.as_second() - now.as_second());
    }
    let span: jiff::Span = expires.parse().with_context(|| {
        format!("--expires '{expires}' is neither a span like 8h or 30d nor a time like 2027-03-31T23:59:59Z")
    })?;
    let duration = span
        .to_duration(jiff::SpanRelativeTo::days_are_24_hours())
        .with_context(|| format!("--expires '{expires}'"))?;
    Ok(duration.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_is_a_span_or_a_time() {
        let now: jiff::Timestamp = "2026-11-23T09:00:00Z".parse().expect("time");
        assert_eq!(lifetime("8h", now).ok(), Some(8 * 3600));
        assert_eq!(lifetime("30d", now).ok(), Some(30 * 24 * 3600));
        assert_eq!(lifetime("2026-11-23T10:00:00Z", now).ok(), Some(3600));
        assert!(lifetime("soon", now).is_err());
    }

    #[test]
    fn a_generated_key_signs_tokens_its_public_half_verifies() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        generate(dir.path(), "ics-signing", false)?;
        let private = std::fs::read_to_string(dir.path().join("ics-signing.pem"))?;
        let public = std::fs::read_to_string(dir.path().join("ics-signing.pub.pem"))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("ics-signing.pem"))?
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let system = domain::SystemId::new("kav").map_err(|e| anyhow::anyhow!("{e}"))?;
        let principal = auth::Principal::new(
            "kccg-finance",
            system.clone(),
            auth::Role::MemberFinance,
            Some("KCCG"),
        )
        .map_err(|e| anyhow::anyhow!(e))?;
        let token = auth::Issuer::from_pem(&private)?.issue(&principal, 1_000, 60)?;
        let verifier = auth::Verifier::from_pem(&public, system)?;
        assert_eq!(verifier.verify(&token, 1_010), Ok(principal));
        // Generating again does not replace the pair.
        generate(dir.path(), "ics-signing", false)?;
        assert_eq!(
            std::fs::read_to_string(dir.path().join("ics-signing.pem"))?,
            private
        );
        Ok(())
    }
}
