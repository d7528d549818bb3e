//! Acknowledged means on stable storage: watched with `strace` on a real store.
//!
//! The test runs this test binary again under `strace` (one child that appends, each append
//! acknowledged by a line it writes to a file once `wait` returns) and reads the trace: every
//! acknowledgement must come after an `fdatasync` of sled's log that followed the log's last
//! write-back (`sync_file_range`, all sled's own flush does), and the append whose value went
//! to a blob file must have had that file and the `blobs` directory synced before it was
//! acknowledged.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::Path;
use std::process::Command;

use store::{AppendRequest, EventStore, NewEvent, StoreConfig};

/// Set in the child's environment: the directory it appends in.
const CHILD_DIR: &str = "STORE_DURABILITY_CHILD_DIR";
/// The child's appends; the one at [`BLOB_APPEND`] is too large for a log segment.
const APPENDS: u32 = 12;
const BLOB_APPEND: u32 = 6;

fn request(n: u32) -> AppendRequest<String> {
    let note = if n == BLOB_APPEND {
        "b".repeat(300 * 1024)
    } else {
        format!("append {n}")
    };
    let mut id = [0u8; 16];
    id[..4].copy_from_slice(&n.to_be_bytes());
    AppendRequest {
        request_id: id,
        command_hash: [n as u8; 32],
        stream: "durable".to_string(),
        stream_version: u64::from(n),
        actor: "tester".to_string(),
        correlation_id: id,
        events: vec![NewEvent {
            event_id: id,
            event_type: "test.appended".to_string(),
            effective_period: None,
            payload: note,
        }],
    }
}

/// Not a test of its own: the child's body, which does nothing unless [`CHILD_DIR`] is set
/// (the parent runs it by name).
#[test]
fn durability_child() {
    let Some(dir) = std::env::var_os(CHILD_DIR) else {
        return;
    };
    let dir = Path::new(&dir);
    let store: EventStore<String> =
        EventStore::open(StoreConfig::new(dir.join("store"))).expect("opens");
    let mut acks = std::fs::File::create(dir.join("acks")).expect("acks file");
    for n in 0..APPENDS {
        let pending = store.enqueue(request(n)).expect("enqueued");
        pending.wait().expect("appended");
        acks.write_all(format!("ACK {n}\n").as_bytes())
            .expect("ack written");
    }
}

/// One completed system call from the trace: its name and the path of its descriptor.
#[derive(Debug)]
struct Call {
    name: String,
    path: String,
    /// For writes, the text written (as strace quotes it).
    text: String,
}

/// Reads `strace -f -y` output into completed calls, in completion order: a call split
/// around another thread's (`<unfinished ...>` … `<... name resumed>`) completes at its
/// resumption.
fn completed_calls(trace: &str) -> Vec<Call> {
    let mut pending: HashMap<String, (String, String, String)> = HashMap::new();
    let mut calls = Vec::new();
    for line in trace.lines() {
        let Some((pid, rest)) = line.split_once(' ') else {
            continue;
        };
        let rest = rest.trim_start();
        if let Some(resumed) = rest.strip_prefix("<... ") {
            let name = resumed.split_whitespace().next().unwrap_or_default();
            if let Some((pending_name, path, text)) = pending.remove(pid)
                && pending_name == name
            {
                calls.push(Call {
                    name: pending_name,
                    path,
                    text,
                });
            }
            continue;
        }
        let Some((name, args)) = rest.split_once('(') else {
            continue;
        };
        let path = args
            .split_once('<')
            .and_then(|(_, after)| after.split_once('>'))
            .map(|(path, _)| path.to_string())
            .unwrap_or_default();
        let text = args
            .split_once(", \"")
            .map(|(_, after)| after.split('"').next().unwrap_or_default().to_string())
            .unwrap_or_default();
        if rest.ends_with("<unfinished ...>") {
            pending.insert(pid.to_string(), (name.to_string(), path, text));
        } else {
            calls.push(Call {
                name: name.to_string(),
                path,
                text,
            });
        }
    }
    calls
}

#[test]
fn every_acknowledged_append_was_fdatasynced_before_its_acknowledgement() {
    let strace = Command::new("strace").arg("-V").output();
    assert!(
        matches!(&strace, Ok(output) if output.status.success()),
        "this test needs strace (`make test` installs it: deploy/local/install-test-tools.sh)"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let trace_path = dir.path().join("trace");
    let status = Command::new("strace")
        .args(["-f", "-qq", "-y", "-s", "16", "-o"])
        .arg(&trace_path)
        .args(["-e", "trace=fdatasync,fsync,sync_file_range,write"])
        .arg(std::env::current_exe().expect("this test binary"))
        .args(["--exact", "durability_child", "--test-threads=1"])
        .env(CHILD_DIR, dir.path())
        .status()
        .expect("strace runs");
    assert!(status.success(), "the child failed: {status}");
    let trace = std::fs::read_to_string(&trace_path).expect("trace");

    let db = dir.path().join("store").join("db");
    let db = db.to_str().expect("utf-8 path");
    let blobs = dir.path().join("store").join("blobs");
    let blobs = blobs.to_str().expect("utf-8 path");
    let acks = dir.path().join("acks");
    let acks = acks.to_str().expect("utf-8 path");

    // Since the last acknowledgement: the log written back and not yet synced; the log
    // synced; a blob file synced; the blob directory synced.
    let (mut unsynced, mut synced, mut blob_synced, mut blob_dir_synced) =
        (false, false, false, false);
    let mut acknowledged = 0;
    for call in completed_calls(&trace) {
        let is_sync = call.name == "fdatasync" || call.name == "fsync";
        match call.name.as_str() {
            "sync_file_range" if call.path == db => unsynced = true,
            _ if is_sync && call.path == db => (unsynced, synced) = (false, true),
            _ if is_sync && call.path == blobs => blob_dir_synced = true,
            _ if is_sync && call.path.starts_with(&format!("{blobs}/")) => blob_synced = true,
            "write" if call.path == acks => {
                assert_eq!(
                    call.text,
                    format!("ACK {acknowledged}\\n"),
                    "acknowledgements in order"
                );
                assert!(
                    synced && !unsynced,
                    "append {acknowledged} was acknowledged without an fdatasync of {db} after its \
                     flush:\n{trace}"
                );
                if acknowledged == BLOB_APPEND {
                    assert!(
                        blob_synced && blob_dir_synced,
                        "append {acknowledged}'s blob was not synced before its acknowledgement:\n{trace}"
                    );
                }
                (synced, blob_synced, blob_dir_synced) = (false, false, false);
                acknowledged += 1;
            }
            _ => {}
        }
    }
    assert_eq!(acknowledged, APPENDS, "every append acknowledged:\n{trace}");
}
