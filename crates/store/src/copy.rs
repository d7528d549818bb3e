//! A private copy of a stopped store, for readers that must not change a byte of it.
//!
//! sled has no read-only mode: opening a directory recovers its log, may write a snapshot and
//! grows `db`, even if nothing is ever inserted. An auditor's evidence must stay as it was, so
//! offline readers (`icsctl audit … --data-dir`) open a copy in a temporary directory of its
//! own, made while the original's lock is held shared — a running ledgerd holds it exclusively,
//! so its live store is refused rather than copied mid-write.

use std::fs::{File, TryLockError};
use std::io;
use std::path::Path;

use crate::error::StoreError;

/// A copy of a store's directory; removed when dropped.
#[derive(Debug)]
pub struct PrivateCopy {
    dir: tempfile::TempDir,
}

impl PrivateCopy {
    /// Copies the stopped store in `dir`. Refuses a directory with no sled database in it, and
    /// one whose store a process has open.
    pub fn of(dir: &Path) -> Result<PrivateCopy, StoreError> {
        let failed = |what: &str, error: io::Error| {
            StoreError::Sled(sled::Error::Io(io::Error::new(
                error.kind(),
                format!("{what} {}: {error}", dir.display()),
            )))
        };
        if !dir.join("conf").is_file() || !dir.join("db").is_file() {
            return Err(StoreError::Corrupt(format!(
                "{} holds no sled database",
                dir.display()
            )));
        }
        let db = File::open(dir.join("db")).map_err(|e| failed("opening the log of", e))?;
        match db.try_lock_shared() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(StoreError::Sled(sled::Error::Io(io::Error::new(
                    io::ErrorKind::WouldBlock,
                    format!(
                        "could not acquire lock on {}: a process has the store open (is \
                         ledgerd still running? offline readers need a stopped ledgerd's \
                         directory)",
                        dir.display()
                    ),
                ))));
            }
            Err(TryLockError::Error(error)) => return Err(failed("locking", error)),
        }
        let copy = tempfile::Builder::new()
            .prefix("ics-ledger-store-copy-")
            .tempdir()
            .map_err(|e| failed("making a directory to copy", e))?;
        copy_tree(dir, copy.path()).map_err(|e| failed("copying", e))?;
        // The shared lock goes with `db`, after the copy.
        drop(db);
        Ok(PrivateCopy { dir: copy })
    }

    /// Where the copy is.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// Copies the directory `from`, files and subdirectories, to `to` (created if missing).
pub fn copy_tree(from: &Path, to: &Path) -> io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}
