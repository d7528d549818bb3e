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
//! The file is two fixed-size slots of text, for an operator to read: a format line, the
//! sequence, the hash in hex and a SHA-256 of the lines before it. An update overwrites the
//! older slot in place and syncs it once (no rename, no directory sync: the anchor is rewritten
//! after every flush, beside the store's own syncs); a crash in the middle of it leaves the
//! other slot, one head older, whole. The newest slot that checks out is the anchor; a file
//! in which neither does is refused, never trusted.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;

use sha2::{Digest, Sha256};

use crate::codec::HASH_LEN;
use crate::model::Head;

/// The anchor's file name in the store's directory.
pub const ANCHOR_FILE: &str = "anchor";
const FORMAT_LINE: &str = "ics-ledger-anchor 1";
/// Bytes of one slot: the text of a head, padded with spaces.
const SLOT_BYTES: usize = 256;

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
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(AnchorError::Io { path, error }),
    };
    newest(&bytes)
        .map(|(head, _)| Some(head))
        .map_err(|reason| AnchorError::Damaged { path, reason })
}

/// The newest slot that checks out, and which it is.
fn newest(bytes: &[u8]) -> Result<(Head, usize), String> {
    if bytes.len() != 2 * SLOT_BYTES {
        return Err(format!("{} bytes, not {}", bytes.len(), 2 * SLOT_BYTES));
    }
    let slots = [0, 1].map(|slot| parse(&bytes[slot * SLOT_BYTES..][..SLOT_BYTES]));
    match slots {
        [Ok(a), Ok(b)] if b.sequence > a.sequence => Ok((b, 1)),
        [Ok(a), _] => Ok((a, 0)),
        [Err(_), Ok(b)] => Ok((b, 1)),
        [Err(a), Err(b)] => Err(format!("neither slot checks out ({a}; {b})")),
    }
}

fn parse(slot: &[u8]) -> Result<Head, String> {
    let text = std::str::from_utf8(slot).map_err(|_| "not UTF-8".to_string())?;
    let lines: Vec<&str> = text.trim_end_matches(' ').lines().collect();
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

fn render(head: Head) -> [u8; SLOT_BYTES] {
    let body = body(
        FORMAT_LINE,
        &format!("sequence {}", head.sequence),
        &format!("hash {}", hex::encode(head.hash)),
    );
    let checksum = hex::encode(Sha256::digest(body.as_bytes()));
    let text = format!("{body}sha256 {checksum}\n");
    let mut slot = [b' '; SLOT_BYTES];
    slot[..text.len()].copy_from_slice(text.as_bytes());
    slot
}

/// Writes a new anchor of the store in `dir` at `head`, both slots, durably (the file and its
/// directory entry).
pub fn write(dir: &Path, head: Head) -> io::Result<()> {
    let slot = render(head);
    let file = File::create(anchor_path(dir))?;
    file.write_all_at(&[slot, slot].concat(), 0)?;
    file.sync_data()?;
    File::open(dir)?.sync_all()
}

/// The anchor file kept open for updates, overwriting the older slot each time.
struct AnchorFile {
    file: File,
    /// The slot the next update overwrites: the one not holding the newest head.
    next: usize,
}

impl AnchorFile {
    /// Opens the anchor of the store in `dir` (which [`write`] or an earlier run made).
    fn open(dir: &Path) -> io::Result<AnchorFile> {
        let path = anchor_path(dir);
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)?;
        let newest = newest(&std::fs::read(&path)?).map_err(io::Error::other)?;
        Ok(AnchorFile {
            file,
            next: 1 - newest.1,
        })
    }

    fn update(&mut self, head: Head) -> io::Result<()> {
        let offset = (self.next * SLOT_BYTES) as u64;
        self.file.write_all_at(&render(head), offset)?;
        self.file.sync_data()?;
        self.next = 1 - self.next;
        Ok(())
    }
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
    /// Starts the thread that updates the anchor of the store in `dir`, which must have one
    /// (the store checks or writes it on opening).
    pub(crate) fn start(dir: PathBuf) -> io::Result<AnchorWriter> {
        let file = AnchorFile::open(&dir)?;
        let shared = Arc::new((Mutex::new(Offered::default()), Condvar::new()));
        let theirs = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("event-store-anchor".to_string())
            .spawn(move || run(file, &dir, &theirs))?;
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

fn run(mut file: AnchorFile, dir: &Path, shared: &(Mutex<Offered>, Condvar)) {
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
            match file.update(head) {
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

    fn head(sequence: u64) -> Head {
        Head {
            sequence,
            hash: [sequence as u8; HASH_LEN],
        }
    }

    #[test]
    fn an_anchor_reads_back_and_a_changed_byte_falls_back_or_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(read(dir.path()).expect("no anchor").is_none());
        write(dir.path(), head(1_506)).expect("writes");
        assert_eq!(read(dir.path()).expect("reads"), Some(head(1_506)));
        let mut file = AnchorFile::open(dir.path()).expect("opens");
        file.update(head(1_507)).expect("updates");
        assert_eq!(read(dir.path()).expect("reads"), Some(head(1_507)));
        let bytes = std::fs::read(anchor_path(dir.path())).expect("bytes");
        for offset in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[offset] ^= 0x01;
            // Trailing padding is not part of a head: a changed byte there may leave it whole.
            let newer = offset / SLOT_BYTES == file.next ^ 1;
            std::fs::write(anchor_path(dir.path()), &damaged).expect("writes");
            match read(dir.path()) {
                Ok(Some(found)) if found == head(1_507) || (newer && found == head(1_506)) => {}
                other => panic!("byte {offset} changed, yet {other:?}"),
            }
        }
        // Both slots damaged: refused.
        let mut damaged = bytes.clone();
        damaged[3] ^= 0x01;
        damaged[SLOT_BYTES + 3] ^= 0x01;
        std::fs::write(anchor_path(dir.path()), &damaged).expect("writes");
        assert!(matches!(read(dir.path()), Err(AnchorError::Damaged { .. })));
        std::fs::write(anchor_path(dir.path()), &bytes[..SLOT_BYTES]).expect("writes");
        assert!(matches!(read(dir.path()), Err(AnchorError::Damaged { .. })));
    }

    #[test]
    fn updates_alternate_slots_so_a_torn_one_leaves_the_head_before() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(dir.path(), head(10)).expect("writes");
        let mut file = AnchorFile::open(dir.path()).expect("opens");
        for sequence in 11..=14 {
            file.update(head(sequence)).expect("updates");
        }
        // A crash half-way through the next update: that slot is garbage, the other whole.
        let torn = file.next * SLOT_BYTES;
        file.file
            .write_all_at(b"ics-ledger-anch", torn as u64)
            .expect("torn");
        assert_eq!(read(dir.path()).expect("reads"), Some(head(14)));
        // Reopened, the next update goes over the torn slot.
        let mut file = AnchorFile::open(dir.path()).expect("reopens");
        file.update(head(15)).expect("updates");
        assert_eq!(read(dir.path()).expect("reads"), Some(head(15)));
    }

    #[test]
    fn the_writer_leaves_the_last_offered_head() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(dir.path(), head(0)).expect("writes");
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
