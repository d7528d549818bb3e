//! The record holds, through the real binaries: a store that comes back shorter than it was,
//! or forked from it, is refused by ledgerd (exit status 3, naming the missing events and the
//! way out) and by the offline audit (exit 1); offline audits change no byte of the directory
//! they read; and a ledgerd whose storage failed still stops cleanly on SIGTERM. (One changed
//! byte of any file of the store is the fault suite's, `faults.rs`.)

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use e2e::{Ledgerd, Started, start_on};
use sha2::{Digest, Sha256};

/// ledgerd's exit status when its store is damaged or diverged (`ledgerd::server`).
const EXIT_STORE_REFUSED: i32 = 3;

/// Every file under `dir` with the SHA-256 of its bytes.
fn checksums(dir: &Path) -> anyhow::Result<BTreeMap<PathBuf, String>> {
    let mut sums = BTreeMap::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            sums.extend(checksums(&path)?);
        } else {
            sums.insert(
                path.clone(),
                hex::encode(Sha256::digest(std::fs::read(&path)?)),
            );
        }
    }
    Ok(sums)
}

/// A key pair for `icsctl audit verify --ledger-key`, in `dir`; the public key's path.
fn ledger_key(dir: &Path) -> anyhow::Result<String> {
    Ok(e2e::ledger_checkpoint_keys(dir)?.1)
}

fn verify_offline(public_key: &str, dir: &Path) -> anyhow::Result<(Option<i32>, String)> {
    let dir_arg = dir.to_string_lossy().to_string();
    e2e::icsctl_exit(&[
        "audit",
        "verify",
        "--quiet",
        "--no-regulator",
        "--ledger-key",
        public_key,
        "--data-dir",
        &dir_arg,
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_shorter_than_it_was_is_refused_and_offline_audits_write_nothing()
-> anyhow::Result<()> {
    let work = tempfile::tempdir()?;
    let public_key = ledger_key(&work.path().join("keys"))?;
    let (first_part, second_part) = e2e::split_demo_scenario(work.path(), 150)?;
    let live = work.path().join("live");
    let mut ledgerd = Ledgerd::start(&live, None)?;
    let load = |ledgerd: &Ledgerd, part: &Path| {
        e2e::icsctl(
            &ledgerd.url(),
            &["load", "--quiet", &part.to_string_lossy()],
        )
    };
    load(&ledgerd, &first_part)?;
    let part_one = e2e::head(&mut ledgerd.client().await?).await?.sequence;
    ledgerd.terminate()?;
    // The store as it was after the first part: what a disk that lost the rest would hold.
    let old = work.path().join("old");
    store::copy::copy_tree(&live, &old)?;
    ledgerd.restart()?;
    load(&ledgerd, &second_part)?;
    let head = e2e::head(&mut ledgerd.client().await?).await?.sequence;
    assert_eq!(head, 383);
    assert!(part_one < head);
    ledgerd.terminate()?;

    // Offline audits of the live store verify it and change nothing in its directory.
    let before = checksums(&live)?;
    let (code, out) = verify_offline(&public_key, &live)?;
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("verified 383 events"), "{out}");
    let live_arg = live.to_string_lossy().to_string();
    let (code, out) = e2e::icsctl_exit(&[
        "audit",
        "replay",
        "position",
        "--year",
        "2018",
        "--month",
        "12",
        "--data-dir",
        &live_arg,
    ])?;
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(
        checksums(&live)?,
        before,
        "an offline audit changed the directory it read"
    );

    // The old log under the live store's anchor: events after the first part are missing.
    std::fs::copy(
        store::anchor::anchor_path(&live),
        store::anchor::anchor_path(&old),
    )?;
    let Started::Exited(code, out) = start_on(&old).await? else {
        panic!("ledgerd served a store shorter than its anchor");
    };
    assert_eq!(code, Some(EXIT_STORE_REFUSED), "{out}");
    let missing = format!("events {}..={head} are missing", part_one + 1);
    assert!(
        out.contains(&missing) && out.contains("icsctl store restore"),
        "{out}"
    );
    assert!(!out.contains("panicked"), "{out}");
    let before = checksums(&old)?;
    let (code, out) = verify_offline(&public_key, &old)?;
    assert_eq!(
        code,
        Some(1),
        "a log shorter than its anchor fails the audit: {out}"
    );
    assert!(
        out.contains(&format!("FAILED at event {}", part_one + 1)) && out.contains("missing"),
        "{out}"
    );
    assert_eq!(checksums(&old)?, before, "the audit changed nothing");

    // The live store itself starts again, whole.
    ledgerd.restart()?;
    assert_eq!(
        e2e::head(&mut ledgerd.client().await?).await?.sequence,
        head
    );
    ledgerd.terminate()?;
    Ok(())
}

/// A storage failure (a file-size limit standing in for a full disk: both fail sled's write
/// with an I/O error) stops ledgerd taking commands; SIGTERM then stops it cleanly (it exited
/// 1, "flushing the event store", before), and the restart holds every acknowledged event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ledgerd_whose_storage_failed_stops_cleanly_and_keeps_what_it_acknowledged()
-> anyhow::Result<()> {
    let work = tempfile::tempdir()?;
    let data = work.path().join("ledgerd");
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], testkit::free_port()));
    let ledgerd = testkit::workspace_binary("ledgerd")?;
    // 100 KiB of log: the demo needs about twice that. SIGXFSZ ignored, so a write past the
    // limit fails with EFBIG instead of killing the process.
    let script = format!(
        "trap '' XFSZ; ulimit -f 100; exec {} --listen {addr} --data-dir {} --system kav",
        ledgerd.display(),
        data.display()
    );
    let mut command = Command::new("bash");
    command.args(["-c", &script]).env("RUST_LOG", "info");
    let mut process = testkit::ChildGuard::spawn_logged(
        "ledgerd",
        &mut command,
        &work.path().join("ledgerd.log"),
    )?;
    process.wait_for_port(addr, Duration::from_secs(20))?;
    let url = format!("http://{addr}");
    let (code, out) = e2e::icsctl_exit(&[
        "--server",
        &url,
        "load",
        "--quiet",
        &e2e::demo_scenario().to_string_lossy(),
    ])?;
    assert_ne!(code, Some(0), "the load cannot finish: {out}");
    assert!(out.contains("File too large"), "{out}");
    let channel = tonic::transport::Channel::from_shared(url)?
        .connect()
        .await?;
    let mut client = api::pb::ledger_service_client::LedgerServiceClient::new(channel);
    let acknowledged = e2e::head(&mut client).await?;
    assert!(acknowledged.sequence > 0 && acknowledged.sequence < 383);
    let status = process.terminate(Duration::from_secs(20))?;
    assert_eq!(status.code(), Some(0), "{}", process.log_tail());

    let mut restarted = Ledgerd::start(&data, None)?;
    let mut client = restarted.client().await?;
    let head = e2e::head(&mut client).await?;
    assert_eq!(
        (head.sequence, &head.hash),
        (acknowledged.sequence, &acknowledged.hash)
    );
    assert_eq!(
        e2e::read_all(&mut client).await?.len() as u64,
        head.sequence
    );
    restarted.terminate()?;
    Ok(())
}
