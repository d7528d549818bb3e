//! The real `ledgerd` binary driven by a finance team's Python script — `grpcio` from PyPI,
//! stubs generated from `proto/` alone (`tests/python/ledger_client.py`) — as issue 17 found
//! it failing:
//!
//! - a `SubmitBulk` of 100,000 commands, each sent by grpcio in an HTTP/2 DATA frame of its
//!   own, completes and records every command, with authentication on (finding 5; before, h2
//!   cut such loads with GOAWAY `too_many_data_frames`);
//! - a refused `SubmitBulk`'s status details are read with the standard
//!   `grpc_status.rpc_status.from_call`, as `ledger.proto` tells Python clients to (finding 8;
//!   before, it raised ValueError).
//!
//! The Python packages come from `deploy/local/install-test-tools.sh` (run by `make test`) in
//! `.local/py`; without them these tests fail, saying so.

use std::path::{Path, PathBuf};
use std::process::Command;

use api::pb;
use e2e::Ledgerd;
use tonic::Request;

/// Commands in the bulk load.
const BULK_COMMANDS: u64 = 100_000;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs `tests/python/ledger_client.py` with `args`; its JSON answer.
fn python(target: &str, token: Option<&str>, args: &[&str]) -> anyhow::Result<serde_json::Value> {
    let packages = repo().join(".local/py");
    let check = Command::new("python3")
        .env("PYTHONPATH", &packages)
        .args([
            "-c",
            "import grpc, grpc_status.rpc_status, grpc_tools.protoc",
        ])
        .output()?;
    anyhow::ensure!(
        check.status.success(),
        "the Python gRPC packages are not in {}: run deploy/local/install-test-tools.sh \
         (`make test` does): {}",
        packages.display(),
        String::from_utf8_lossy(&check.stderr)
    );
    let mut command = Command::new("python3");
    command
        .env("PYTHONPATH", &packages)
        .arg(repo().join("tests/python/ledger_client.py"))
        .args(["--target", target]);
    if let Some(token) = token {
        command.args(["--token", token]);
    }
    let output = command.args(args).output()?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let answer = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(answer).map_err(|error| {
        anyhow::anyhow!(
            "ledger_client.py {args:?} answered no JSON ({error}): {stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

fn target(ledgerd: &Ledgerd) -> String {
    ledgerd.url().trim_start_matches("http://").to_string()
}

fn icsctl(args: &[&str]) -> anyhow::Result<String> {
    let (ok, output) = e2e::icsctl_outcome(args)?;
    anyhow::ensure!(ok, "icsctl {args:?}: {output}");
    Ok(output.trim().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grpcio_client_loads_100000_commands_in_one_submit_bulk() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let keys = dir.path().join("keys");
    icsctl(&["keys", "generate", "--dir", &keys.to_string_lossy()])?;
    let private = keys.join("ics-signing.pem").to_string_lossy().into_owned();
    let token = icsctl(&[
        "token",
        "issue",
        "--key",
        &private,
        "--role",
        "system-finance",
        "--subject",
        "month-end-script",
    ])?;
    let public = keys
        .join("ics-signing.pub.pem")
        .to_string_lossy()
        .into_owned();
    // What this test is about is the transport: a debug build on a busy machine may take
    // longer than the default deadline to record 100,000 commands.
    let ledgerd = Ledgerd::start_with(
        &dir.path().join("ledgerd"),
        None,
        &[
            ("LEDGERD_AUTH_PUBLIC_KEY", &public),
            ("LEDGERD_GRPC_REQUEST_DEADLINE_MS", "900000"),
        ],
    )?;
    let target = target(&ledgerd);

    let set_up = python(&target, Some(&token), &["setup"])?;
    assert_eq!(set_up["ok"], true, "{set_up}");
    let count = BULK_COMMANDS.to_string();
    let loaded = python(&target, Some(&token), &["bulk", "--count", &count])?;
    assert_eq!(loaded["ok"], true, "the load completes: {loaded}");
    assert_eq!(loaded["accepted"], BULK_COMMANDS, "{loaded}");
    assert_eq!(loaded["last_sequence"], 2 + BULK_COMMANDS, "{loaded}");

    let mut client = ledgerd.client().await?;
    let mut head = Request::new(pb::HeadRequest {});
    head.metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse()?);
    let head = client.head(head).await?.into_inner();
    assert_eq!(head.sequence, 2 + BULK_COMMANDS, "every command recorded");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_bulk_is_read_with_grpc_status_from_call() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let ledgerd = Ledgerd::start(&dir.path().join("ledgerd"), None)?;
    let target = target(&ledgerd);
    assert_eq!(python(&target, None, &["setup"])?["ok"], true);

    let refused = python(&target, None, &["refused-bulk", "--good", "3"])?;
    assert_eq!(refused["ok"], false, "{refused}");
    assert_eq!(refused["code"], "INVALID_ARGUMENT", "{refused}");
    assert!(
        refused.get("from_call_error").is_none(),
        "rpc_status.from_call reads the details: {refused}"
    );
    let status = &refused["rpc_status"];
    assert_eq!(status["code"], 3, "{refused}");
    assert_eq!(status["message"], refused["message"], "{refused}");
    assert!(
        status["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("command 3: ")),
        "{refused}"
    );
    let bad_request = &status["details"][0];
    assert_eq!(bad_request["type"], "BadRequest", "{refused}");
    assert_eq!(
        bad_request["fields"],
        serde_json::json!(["commands[3].member"]),
        "{refused}"
    );

    let mut client = ledgerd.client().await?;
    let head = client.head(pb::HeadRequest {}).await?.into_inner();
    assert_eq!(
        head.sequence,
        2 + 3,
        "the three commands before the refused one"
    );
    Ok(())
}
