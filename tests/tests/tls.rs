//! The real binaries over TLS: `icsctl dev certs` makes a local CA and certificates, ledgerd
//! serves with them, and icsctl reaches it only when it trusts that CA.

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use e2e::icsctl;
use testkit::ChildGuard;

#[test]
fn icsctl_reaches_ledgerd_over_tls_only_with_the_ca() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let ours = dir.path().join("certs");
    let theirs = dir.path().join("other-certs");
    let certs = |at: &std::path::Path| {
        icsctl(
            "http://unused",
            &["dev", "certs", "--dir", at.to_str().expect("utf-8 path")],
        )
    };
    certs(&ours)?;
    certs(&theirs)?;
    // Run again without --force: the certificates are kept.
    let ca_before = std::fs::read(ours.join("ca.pem"))?;
    assert!(certs(&ours)?.contains("already"));
    assert_eq!(std::fs::read(ours.join("ca.pem"))?, ca_before);

    let addr = SocketAddr::from(([127, 0, 0, 1], testkit::free_port()));
    let mut command = Command::new(testkit::workspace_binary("ledgerd")?);
    command
        .args([
            "--listen",
            &addr.to_string(),
            "--system",
            "kav",
            "--data-dir",
        ])
        .arg(dir.path().join("ledgerd"))
        .env("LEDGERD_TLS_CERT", ours.join("server.pem"))
        .env("LEDGERD_TLS_KEY", ours.join("server.key"));
    let mut ledgerd =
        ChildGuard::spawn_logged("ledgerd", &mut command, &dir.path().join("ledgerd.log"))?;
    ledgerd.wait_for_port(addr, Duration::from_secs(20))?;

    let https = format!("https://{addr}");
    let ca = ours.join("ca.pem");
    let head = icsctl(
        &https,
        &["--ca", ca.to_str().expect("utf-8"), "head", "--json"],
    )?;
    let head: serde_json::Value = serde_json::from_str(&head)?;
    assert_eq!(head["sequence"], 0, "{head}");

    let plaintext = icsctl(&format!("http://{addr}"), &["head"]);
    assert!(
        plaintext.is_err(),
        "plaintext must be refused: {plaintext:?}"
    );
    let wrong_ca = theirs.join("ca.pem");
    let untrusted = icsctl(&https, &["--ca", wrong_ca.to_str().expect("utf-8"), "head"]);
    assert!(
        untrusted.is_err(),
        "another CA must not be trusted: {untrusted:?}"
    );

    ledgerd.terminate(Duration::from_secs(10))?;
    Ok(())
}
