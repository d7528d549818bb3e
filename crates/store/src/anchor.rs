//! The anchor: the committed head, kept outside sled, so a store never comes back shorter.
//!
//! sled recovers its log by reading it until the first record whose checksum fails, which it
//! takes for a write torn by a crash: one changed byte in the middle of `db` and sled opens,
//! without a word, a log that ends before it. The chain cannot tell — a prefix of a chain
//! verifies. So the store keeps the last durable head (sequence and chain hash) in a file of
//! its own, `<dir>/anchor`, rewritten after flushes (by a thread of its own, off the
//! acknowledgement path: the anchor may lag the head, never lead it), and on open refuses a
//! log that ends before the anchor or holds another event at its sequence.
//!
//! The file is text, for an operator to read: a format line, the sequence, the hash in hex and
//! a SHA-256 of the lines before it (a damaged anchor is refused too, never trusted). It is
//! replaced atomically: written to `anchor.tmp`, synced, renamed, the directory synced.

use std::fs::File;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;

use sha2::{Digest, Sha256};

use crate::codec::HASH_LEN;
use crate::model::Head;

/// The anchor's file name in the store's directory.
pub const ANCHOR_FILE: &str = "anchor";
const FORMAT_LINE: &str = "ics-ledger-anchor 1";

/// Where the anchor of the store in `dir` lives.
pub fn anchor_path(dir: &Path) -> PathBuf {
    dir.join(ANCHOR_FILE)
}

/// Why an anchor could not be read.
#[derive(Debug, thiserror::Error)]
pub enum AnchorError {
    #[error("reading {path}: {error}")]
    Io { path: PathBuf, error: io::Error },
    #[error(
        "{path} is damaged ({reason}): restore the store, or remove the file if the log is known to be whole"
    )]
    Damaged { path: PathBuf, reason: String },
}

/// Reads the anchor of the store in `dir`; `None` if it has none (a store written before
/// anchors, or a new one).
pub fn read(dir: &Path) -> Result<Option<Head>, AnchorError> {
    let path = anchor_path(dir);
    let text = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(AnchorError::Io { path, error }),
    };
    parse(&text)
        .map(Some)
        .map_err(|reason| AnchorError::Damaged { path, reason })
}

fn parse(bytes: &[u8]) -> Result<Head, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "not UTF-8".to_string())?;
    let lines: Vec<&str> = text.lines().collect();
    let [format, sequence, hash, checksum] = lines[..] else {
        return Err(format!("{} lines, not 4", lines.len()));
    };
    let body = body(format, sequence, hash);
    let expected = format!("sha256 {}", hex::encode(Sha256::digest(body.as_bytes())));
    if checksum != expected {
        return Err("its checksum does not match".to_string());
    }
    if format != FORMAT_LINE {
        return Err(format!("format {format:?}, not {FORMAT_LINE:?}"));
    }
    let sequence = sequence
        .strip_prefix("sequence ")
        .and_then(|n| n.parse::<u64>().ok())
        .ok_or_else(|| "no sequence".to_string())?;
    let hash: [u8; HASH_LEN] = hash
        .strip_prefix("hash ")
        .and_then(|h| hex::decode(h).ok())
        .and_then(|h| h.try_into().ok())
        .ok_or_else(|| "no hash".to_string())?;
    Ok(Head { sequence, hash })
}

fn body(format: &str, sequence: &str, hash: &str) -> String {
    format!("{format}\n{sequence}\n{hash}\n")
}

fn render(head: Head) -> String {
    let body = body(
        FORMAT_LINE,
        &format!("sequence {}", head.sequence),
        &format!("hash {}", hex::encode(head.hash)),
    );
    let checksum = hex::encode(Sha256::digest(body.as_bytes()));
    format!("{body}sha256 {checksum}\n")
}

/// Replaces the anchor of the store in `dir` with `head`, durably.
pub fn write(dir: &Path, head: Head) -> io::Result<()> {
    let temporary = dir.join(format!("{ANCHOR_FILE}.tmp"));
    let mut file = File::create(&temporary)?;
    file.write_all(render(head).as_bytes())?;
    file.sync_data()?;
    drop(file);
    std::fs::rename(&temporary, anchor_path(dir))?;
    File::open(dir)?.sync_all()
}

/// Rewrites the anchor on a thread of its own as heads are offered, keeping only the latest.
pub(crate) struct AnchorWriter {
    shared: Arc<(Mutex<Offered>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

#[derive(Default)]
struct Offered {
    head: Option<Head>,
    closed: bool,
}

impl AnchorWriter {
    pub(crate) fn start(dir: PathBuf) -> io::Result<AnchorWriter> {
        let shared = Arc::new((Mutex::new(Offered::default()), Condvar::new()));
        let theirs = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("event-store-anchor".to_string())
            .spawn(move || run(&dir, &theirs))?;
        Ok(AnchorWriter {
            shared,
            thread: Some(thread),
        })
    }

    /// Offers a durable head; the thread writes the latest offered when it is free.
    pub(crate) fn offer(&self, head: Head) {
        let (offered, wake) = &*self.shared;
        offered.lock().unwrap_or_else(PoisonError::into_inner).head = Some(head);
        wake.notify_one();
    }
}

impl Drop for AnchorWriter {
    /// Writes what is still offered, then stops the thread.
    fn drop(&mut self) {
        let (offered, wake) = &*self.shared;
        offered
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .closed = true;
        wake.notify_one();
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("the event store's anchor thread panicked");
        }
    }
}

fn run(dir: &Path, shared: &(Mutex<Offered>, Condvar)) {
    let (offered, wake) = shared;
    let mut failing = false;
    loop {
        let (head, closed) = {
            let mut state = offered.lock().unwrap_or_else(PoisonError::into_inner);
            while state.head.is_none() && !state.closed {
                state = wake.wait(state).unwrap_or_else(PoisonError::into_inner);
            }
            (state.head.take(), state.closed)
        };
        if let Some(head) = head {
            // A failed write leaves the older anchor, which still holds: warn once per run of
            // failures, and try again with the next head.
            match write(dir, head) {
                Ok(()) => failing = false,
                Err(error) if !failing => {
                    failing = true;
                    tracing::warn!(%error, dir = %dir.display(), "could not update the event store's anchor");
                }
                Err(_) => {}
            }
        }
        if closed {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_anchor_reads_back_and_any_changed_byte_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(read(dir.path()).expect("no anchor").is_none());
        let head = Head {
            sequence: 1_506,
            hash: [0xAB; HASH_LEN],
        };
        write(dir.path(), head).expect("writes");
        assert_eq!(read(dir.path()).expect("reads"), Some(head));
        let bytes = std::fs::read(anchor_path(dir.path())).expect("bytes");
        for offset in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[offset] ^= 0x01;
            std::fs::write(anchor_path(dir.path()), &damaged).expect("writes");
            assert!(
                matches!(read(dir.path()), Err(AnchorError::Damaged { .. })),
                "byte {offset} changed, yet {:?}",
                read(dir.path())
            );
        }
    }

    #[test]
    fn the_writer_leaves_the_last_offered_head() {
        let dir = tempfile::tempdir().expect("tempdir");
        let writer = AnchorWriter::start(dir.path().to_path_buf()).expect("starts");
        for sequence in 1..=50 {
            writer.offer(Head {
                sequence,
                hash: [sequence as u8; HASH_LEN],
            });
        }
        drop(writer);
        assert_eq!(
            read(dir.path()).expect("reads"),
            Some(Head {
                sequence: 50,
                hash: [50; HASH_LEN]
            })
        );
    }
}
