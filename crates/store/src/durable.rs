//! Making a flush durable: what sled's `flush` leaves out.
//!
//! On Linux sled 0.34.7's flush writes the log with `pwrite` and then `sync_file_range`,
//! which neither flushes the drive's volatile write cache nor the file's metadata (sled#1452):
//! enough to survive the process dying, not a power cut or a kernel crash. Values too large
//! for a log segment go to files of their own under `blobs/`, written with no sync at all.
//! So after every flush the store `fdatasync`s the log file, every blob file that appeared
//! since the last sync and, when there was one, the `blobs` directory (its new entries) —
//! once per group commit, before anything is acknowledged.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

/// A failed sync, as the store reports it.
pub(crate) fn sync_error(error: io::Error) -> crate::StoreError {
    crate::StoreError::Sync(error.to_string())
}

/// The files of one sled directory that a flush may have written.
#[derive(Debug)]
pub(crate) struct DiskSync {
    /// sled's log, `<dir>/db`: a descriptor of our own (an fsync on any descriptor of a file
    /// syncs the file).
    db: File,
    blobs: PathBuf,
    /// Blob files already synced. Rebuilt from each listing, so files sled removed leave it.
    synced: Mutex<BTreeSet<OsString>>,
}

impl DiskSync {
    /// Opens `dir`'s log file and syncs the directory itself once (the entries of `db`,
    /// `conf` and `blobs` a new store has just created).
    pub(crate) fn open(dir: &Path) -> io::Result<DiskSync> {
        let db = File::open(dir.join("db"))?;
        File::open(dir)?.sync_all()?;
        let sync = DiskSync {
            db,
            blobs: dir.join("blobs"),
            synced: Mutex::new(BTreeSet::new()),
        };
        sync.sync()?;
        Ok(sync)
    }

    /// `fdatasync`s what the last flush wrote: the log, new blob files, and the blob directory
    /// if it gained any.
    pub(crate) fn sync(&self) -> io::Result<()> {
        self.db.sync_data()?;
        let mut synced = self.synced.lock().unwrap_or_else(PoisonError::into_inner);
        let mut listed = BTreeSet::new();
        let mut gained = false;
        let entries = match std::fs::read_dir(&self.blobs) {
            Ok(entries) => entries,
            // sled creates the directory when it opens; nothing to sync without it.
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(error) => return Err(error),
        };
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name();
            if !synced.contains(&name) {
                match File::open(entry.path()) {
                    Ok(file) => file.sync_data()?,
                    // sled removed it between the listing and the open: nothing to keep.
                    Err(error) if error.kind() == io::ErrorKind::NotFound => continue,
                    Err(error) => return Err(error),
                }
                gained = true;
            }
            listed.insert(name);
        }
        if gained {
            File::open(&self.blobs)?.sync_all()?;
        }
        *synced = listed;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_files_are_synced_once_and_forgotten_when_removed() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("db"), b"log").expect("db");
        std::fs::create_dir(dir.path().join("blobs")).expect("blobs");
        let sync = DiskSync::open(dir.path()).expect("opens");
        let synced = || sync.synced.lock().expect("lock").clone();
        assert!(synced().is_empty());
        std::fs::write(dir.path().join("blobs/17"), b"blob").expect("blob");
        sync.sync().expect("syncs");
        assert_eq!(synced(), BTreeSet::from([OsString::from("17")]));
        std::fs::remove_file(dir.path().join("blobs/17")).expect("removed");
        sync.sync().expect("syncs");
        assert!(synced().is_empty());
    }

    #[test]
    fn a_directory_without_a_log_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(DiskSync::open(dir.path()).is_err());
    }
}
