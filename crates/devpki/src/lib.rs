//! A throwaway public-key infrastructure for one machine: a CA, a server certificate for the
//! loopback names, and a client certificate for mutual TLS. `icsctl dev certs` writes one for
//! `make up` / `make demo`; tests make their own. Not for production: production
//! certificates come from the organisation's own CA.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::Context;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

/// The PEM texts of a CA and the certificates it signed.
#[derive(Clone)]
pub struct Bundle {
    pub ca_cert: String,
    pub server_cert: String,
    pub server_key: String,
    pub client_cert: String,
    pub client_key: String,
}

impl std::fmt::Debug for Bundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bundle").finish_non_exhaustive()
    }
}

/// The files [`write`] creates.
#[derive(Clone, Debug)]
pub struct Files {
    pub ca_cert: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

impl Files {
    pub fn in_dir(dir: &Path) -> Files {
        Files {
            ca_cert: dir.join("ca.pem"),
            server_cert: dir.join("server.pem"),
            server_key: dir.join("server.key"),
            client_cert: dir.join("client.pem"),
            client_key: dir.join("client.key"),
        }
    }
}

/// A new CA (`common_name`), a server certificate for `hosts` (DNS names or IP addresses),
/// and a client certificate named `client`.
pub fn generate(common_name: &str, hosts: &[&str], client: &str) -> anyhow::Result<Bundle> {
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, common_name.to_string());
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate()?)?;

    let server_key = KeyPair::generate()?;
    let mut server =
        CertificateParams::new(hosts.iter().map(|h| h.to_string()).collect::<Vec<_>>())?;
    server.distinguished_name.push(
        DnType::CommonName,
        hosts.first().copied().unwrap_or("localhost"),
    );
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server_cert = server.signed_by(&server_key, &ca)?;

    let client_key = KeyPair::generate()?;
    let mut client_params = CertificateParams::new(Vec::<String>::new())?;
    client_params
        .distinguished_name
        .push(DnType::CommonName, client.to_string());
    client_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let client_cert = client_params.signed_by(&client_key, &ca)?;

    Ok(Bundle {
        ca_cert: ca.pem(),
        server_cert: server_cert.pem(),
        server_key: server_key.serialize_pem(),
        client_cert: client_cert.pem(),
        client_key: client_key.serialize_pem(),
    })
}

/// Writes `bundle` into `dir` (created if missing); keys are readable by their owner only.
pub fn write(bundle: &Bundle, dir: &Path) -> anyhow::Result<Files> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let files = Files::in_dir(dir);
    for (path, text, secret) in [
        (&files.ca_cert, &bundle.ca_cert, false),
        (&files.server_cert, &bundle.server_cert, false),
        (&files.server_key, &bundle.server_key, true),
        (&files.client_cert, &bundle.client_cert, false),
        (&files.client_key, &bundle.client_key, true),
    ] {
        fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
        #[cfg(unix)]
        if secret {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(path, fs::Permissions::from_mode(0o600))?;
        }
        #[cfg(not(unix))]
        let _ = secret;
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bundle_is_pem_and_written_with_private_keys() {
        let bundle = generate("test CA", &["localhost", "127.0.0.1"], "tester").expect("generate");
        assert!(bundle.ca_cert.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(bundle.server_key.contains("PRIVATE KEY"));
        assert_ne!(bundle.server_cert, bundle.client_cert);
        let dir = tempfile::tempdir().expect("tempdir");
        let files = write(&bundle, dir.path()).expect("write");
        assert_eq!(
            fs::read_to_string(&files.ca_cert).expect("read"),
            bundle.ca_cert
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&files.server_key)
                .expect("meta")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
