//! Reading a stopped ledger's sled directory as it is, for an auditor: no tip recovery, no
//! writer thread, nothing trusted. [`EventStore::open`](crate::EventStore::open) refuses a
//! store whose tip does not verify; an auditor wants the opposite — to open whatever is there
//! and be told exactly where it stops verifying. [`RawLog::open_copy`] reads a private copy,
//! leaving the directory as it was (see [`crate::copy`]).

use std::path::{Path, PathBuf};

use crate::copy::PrivateCopy;
use crate::error::StoreError;
use crate::keys;
use crate::model::Head;
use crate::pages;

/// A sled event-store directory opened for reading raw values.
pub struct RawLog {
    tree: sled::Tree,
    /// The directory sled has open: the store's, or its copy's.
    dir: PathBuf,
    /// The copy `tree` reads, if it reads one; declared after `tree`, so dropped after it.
    _copy: Option<PrivateCopy>,
}

impl RawLog {
    /// Opens `dir` (waiting a while if another process still holds its lock) and checks it
    /// is an event store of this format. Refuses a directory with no store in it rather
    /// than creating one.
    pub fn open(dir: &Path) -> Result<RawLog, StoreError> {
        if !dir.join("conf").exists() {
            return Err(StoreError::Corrupt(format!(
                "{} holds no sled database",
                dir.display()
            )));
        }
        Self::open_sled(dir, None)
    }

    /// Opens a private copy of the stopped store in `dir` ([`PrivateCopy`]): nothing in `dir`
    /// is changed, whatever reading it does.
    pub fn open_copy(dir: &Path) -> Result<RawLog, StoreError> {
        let copy = PrivateCopy::of(dir)?;
        let path = copy.path().to_path_buf();
        Self::open_sled(&path, Some(copy))
    }

    fn open_sled(dir: &Path, copy: Option<PrivateCopy>) -> Result<RawLog, StoreError> {
        let db = crate::open::open_dir(dir)?;
        let tree = db.open_tree(keys::TREE_NAME)?;
        match tree.get(keys::meta_format())? {
            Some(marker) if marker.as_ref() == keys::FORMAT_MARKER => {}
            Some(marker) if crate::upgrade::is_earlier_format(&marker) => {
                return Err(crate::upgrade::earlier_format_refused(dir, &marker));
            }
            Some(other) => {
                return Err(StoreError::Corrupt(format!(
                    "format marker {:?}, not {:?}",
                    String::from_utf8_lossy(&other),
                    String::from_utf8_lossy(keys::FORMAT_MARKER)
                )));
            }
            None => {
                return Err(StoreError::Corrupt(format!(
                    "{} is not an ICS Ledger event store (no format marker)",
                    dir.display()
                )));
            }
        }
        Ok(RawLog {
            tree,
            dir: dir.to_path_buf(),
            _copy: copy,
        })
    }

    /// The head the store's anchor records ([`crate::anchor`]): the log must reach it and
    /// hold that hash there. `None` for a store written before anchors.
    pub fn anchor(&self) -> Result<Option<Head>, StoreError> {
        crate::anchor::read(&self.dir).map_err(|e| StoreError::Corrupt(e.to_string()))
    }

    /// The head the store's meta records (`None` for an empty store), unverified.
    pub fn recorded_head(&self) -> Result<Option<Head>, StoreError> {
        let Some(bytes) = self.tree.get(keys::meta_head())? else {
            return Ok(None);
        };
        let (sequence, hash) = keys::decode_meta_head(&bytes)
            .ok_or_else(|| StoreError::Corrupt("meta head value".to_string()))?;
        Ok(Some(Head { sequence, hash }))
    }

    /// How many events the pages hold (a progress bar's length; a malformed entry ends the
    /// count of its page).
    pub fn event_count(&self) -> usize {
        self.tree
            .scan_prefix([keys::PREFIX_EVENT])
            .filter_map(Result::ok)
            .map(|(_, page)| pages::Entries::new(&page).take_while(Result::is_ok).count())
            .sum()
    }

    /// Every stored event as `(sequence its entry names, stored value)`, in page order —
    /// gaps, duplicates and all: judging them is the caller's job.
    pub fn events(&self) -> impl Iterator<Item = Result<(u64, sled::IVec), StoreError>> + '_ {
        pages::Events::new(self.tree.scan_prefix([keys::PREFIX_EVENT]))
    }

    /// The stored value of event `sequence`, found by the sequence its entry names.
    pub fn value(&self, sequence: u64) -> Result<Option<sled::IVec>, StoreError> {
        pages::value_of(&self.tree, sequence).map_err(StoreError::Corrupt)
    }

    /// Replaces the stored value of event `sequence` in its page, as an attacker or a bad
    /// disk would (not flushed: see [`RawLog::flush`]). For tests that tamper on purpose.
    #[doc(hidden)]
    pub fn tamper_replace(&self, sequence: u64, value: &[u8]) -> Result<(), StoreError> {
        self.rewrite_page(sequence, |entries| {
            let entry = entries.iter_mut().find(|(named, _)| *named == sequence);
            let (_, stored) = entry.ok_or_else(|| format!("no event {sequence}"))?;
            *stored = value.to_vec();
            Ok(())
        })
    }

    /// Cuts event `sequence` out of its page (the page goes if it held nothing else). For
    /// tests that tamper on purpose.
    #[doc(hidden)]
    pub fn tamper_remove(&self, sequence: u64) -> Result<(), StoreError> {
        self.rewrite_page(sequence, |entries| {
            let before = entries.len();
            entries.retain(|(named, _)| *named != sequence);
            if entries.len() == before {
                return Err(format!("no event {sequence}"));
            }
            Ok(())
        })
    }

    /// Flushes what the tampering changed.
    #[doc(hidden)]
    pub fn flush(&self) -> Result<(), StoreError> {
        self.tree.flush()?;
        Ok(())
    }

    fn rewrite_page(
        &self,
        sequence: u64,
        change: impl FnOnce(&mut Vec<(u64, Vec<u8>)>) -> Result<(), String>,
    ) -> Result<(), StoreError> {
        let (key, page) = pages::page_holding(&self.tree, sequence)?
            .ok_or_else(|| StoreError::Corrupt(format!("no page holds event {sequence}")))?;
        let mut entries = pages::Entries::new(&page)
            .map(|entry| entry.map(|(named, range)| (named, page[range].to_vec())))
            .collect::<Result<Vec<_>, _>>()
            .map_err(StoreError::Corrupt)?;
        change(&mut entries).map_err(StoreError::Corrupt)?;
        if entries.is_empty() {
            self.tree.remove(&key)?;
        } else {
            let mut rewritten = Vec::new();
            for (named, value) in &entries {
                pages::push_entry(&mut rewritten, *named, &[value]);
            }
            self.tree.insert(&key, rewritten)?;
        }
        Ok(())
    }

    /// Every stored checkpoint, in sequence order.
    pub fn checkpoints(&self) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        checkpoints(&self.tree, 0, usize::MAX)
    }
}

/// The last checkpoint's sequence (0: none).
pub(crate) fn last_checkpoint(tree: &sled::Tree) -> Result<u64, StoreError> {
    match tree.scan_prefix([keys::PREFIX_CHECKPOINT]).next_back() {
        None => Ok(0),
        Some(entry) => {
            let (key, _) = entry?;
            keys::checkpoint_sequence(&key)
                .ok_or_else(|| StoreError::Corrupt(format!("checkpoint key {key:?}")))
        }
    }
}

/// Up to `limit` checkpoints from `from_sequence`.
pub(crate) fn checkpoints(
    tree: &sled::Tree,
    from_sequence: u64,
    limit: usize,
) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
    let mut found = Vec::new();
    let range = tree.range(keys::checkpoint(from_sequence)..=keys::checkpoint(u64::MAX));
    for entry in range.take(limit) {
        let (key, value) = entry?;
        let sequence = keys::checkpoint_sequence(&key)
            .ok_or_else(|| StoreError::Corrupt(format!("checkpoint key {key:?}")))?;
        found.push((sequence, value.to_vec()));
    }
    Ok(found)
}
