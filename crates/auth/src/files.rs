//! The PEM files a service is configured with: its TLS identity (and the CA its clients'
//! certificates must chain to) and the public key its bearer tokens are checked against.
//! ledgerd, positiond and oversightd read them the same way, here; the rest of this crate is
//! pure.

use std::path::{Path, PathBuf};

use tonic::transport::{Certificate, Identity, ServerTlsConfig};

use crate::Verifier;
use crate::token::KeyError;

/// Why a configured file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("TLS needs both tls_cert and tls_key (and tls_client_ca needs them)")]
    TlsPair,
    #[error("auth_public_key {path}: {source}")]
    Key { path: PathBuf, source: KeyError },
}

fn read(path: &Path) -> Result<Vec<u8>, FileError> {
    std::fs::read(path).map_err(|source| FileError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// The server's TLS settings from `tls_cert`, `tls_key` and, for mutual TLS, `tls_client_ca`;
/// `None` (plaintext) when none is set. A key without its certificate, or a client CA
/// without both, is an error rather than a silent fall back to plaintext.
pub fn server_tls(
    cert: Option<&Path>,
    key: Option<&Path>,
    client_ca: Option<&Path>,
) -> Result<Option<ServerTlsConfig>, FileError> {
    let (cert, key) = match (cert, key) {
        (Some(cert), Some(key)) => (read(cert)?, read(key)?),
        (None, None) if client_ca.is_none() => return Ok(None),
        _ => return Err(FileError::TlsPair),
    };
    let mut tls = ServerTlsConfig::new().identity(Identity::from_pem(cert, key));
    if let Some(ca) = client_ca {
        tls = tls.client_ca_root(Certificate::from_pem(read(ca)?));
    }
    Ok(Some(tls))
}

/// The verifier of `system`'s tokens from the public key file `auth_public_key`; `None`
/// (authentication off) when it is not set.
pub fn verifier(
    public_key: Option<&Path>,
    system: domain::SystemId,
) -> Result<Option<Verifier>, FileError> {
    let Some(path) = public_key else {
        return Ok(None);
    };
    let pem = String::from_utf8_lossy(&read(path)?).into_owned();
    Verifier::from_pem(&pem, system)
        .map(Some)
        .map_err(|source| FileError::Key {
            path: path.to_path_buf(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_files_is_plaintext_and_half_a_pair_is_an_error() {
        assert!(server_tls(None, None, None).expect("plaintext").is_none());
        let cert = Path::new("/nonexistent/cert.pem");
        assert!(matches!(
            server_tls(Some(cert), None, None),
            Err(FileError::TlsPair)
        ));
        assert!(matches!(
            server_tls(None, None, Some(cert)),
            Err(FileError::TlsPair)
        ));
        assert!(matches!(
            server_tls(Some(cert), Some(cert), None),
            Err(FileError::Read { .. })
        ));
    }

    #[test]
    fn a_verifier_comes_from_a_public_key_file_and_not_from_anything_else() {
        let dir = std::env::temp_dir().join(format!("auth-files-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let (private, public) = crate::generate_key_pair().expect("keys");
        let system = domain::SystemId::new("kav").expect("id");
        let public_path = dir.join("public.pem");
        std::fs::write(&public_path, public).expect("write");
        assert!(
            verifier(Some(&public_path), system.clone())
                .expect("loads")
                .is_some()
        );
        let private_path = dir.join("private.pem");
        std::fs::write(&private_path, private).expect("write");
        assert!(matches!(
            verifier(Some(&private_path), system.clone()),
            Err(FileError::Key { .. })
        ));
        assert!(verifier(None, system).expect("off").is_none());
        let _ = std::fs::remove_dir_all(dir);
    }
}
