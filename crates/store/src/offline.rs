//! Reading a stopped ledger's sled directory as it is, for an auditor: no tip recovery, no
//! writer thread, nothing trusted. [`EventStore::open`](crate::EventStore::open) refuses a
//! store whose tip does not verify; an auditor wants the opposite — to open whatever is there
//! and be told exactly where it stops verifying.

use std::path::Path;

use crate::error::StoreError;
use crate::keys;
use crate::model::Head;

/// A sled event-store directory opened for reading raw values.
pub struct RawLog {
    tree: sled::Tree,
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
        let db = crate::open::open_dir(dir)?;
        let tree = db.open_tree(keys::TREE_NAME)?;
        match tree.get(keys::meta_format())? {
            Some(marker) if marker.as_ref() == keys::FORMAT_MARKER => {}
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
        Ok(RawLog { tree })
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

    /// How many event keys there are (a progress bar's length).
    pub fn event_count(&self) -> usize {
        self.tree.scan_prefix([keys::PREFIX_EVENT]).count()
    }

    /// Every stored event as `(sequence in its key, stored value)`, in key order — gaps,
    /// duplicates and all: judging them is the caller's job.
    pub fn events(&self) -> impl Iterator<Item = Result<(u64, sled::IVec), StoreError>> + '_ {
        self.tree.scan_prefix([keys::PREFIX_EVENT]).map(|entry| {
            let (key, value) = entry?;
            let sequence = keys::event_sequence(&key)
                .ok_or_else(|| StoreError::Corrupt(format!("event key {key:?}")))?;
            Ok((sequence, value))
        })
    }

    /// Every stored checkpoint, in sequence order.
    pub fn checkpoints(&self) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        checkpoints(&self.tree, 0, usize::MAX)
    }

    /// The raw tree, for tests that tamper with a stopped ledger's data on purpose.
    #[doc(hidden)]
    pub fn tree_for_tampering(&self) -> &sled::Tree {
        &self.tree
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
