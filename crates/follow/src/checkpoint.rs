//! A read-side service's own sled: the projection and its last sequence, stored as ONE value, so that
//! after a crash the projection on disk is exactly the fold of events `1..=sequence` — never
//! a projection that has counted an event whose sequence it does not remember.

use std::path::Path;

use crate::parked::ParkedMessages;
use crate::projection::{Checkpointed, Projection};

const TREE: &[u8] = b"positiond";
const KEY: &[u8] = b"checkpoint";
/// Bumped when the stored layout changes; a checkpoint of another format is rebuilt from
/// the log rather than misread.
const FORMAT: u8 = 2;

/// Where checkpoints are kept, and the messages refused. Cheap to clone: one sled database.
#[derive(Clone)]
pub struct CheckpointStore {
    db: sled::Db,
    tree: sled::Tree,
    parked: ParkedMessages,
}

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("sled: {0}")]
    Sled(#[from] sled::Error),
    #[error("encoding the checkpoint: {0}")]
    Encode(#[from] bincode::error::EncodeError),
}

impl CheckpointStore {
    pub fn open(dir: &Path) -> Result<Self, CheckpointError> {
        let db = store::open_db(&sled::Config::new().path(dir).flush_every_ms(None))?;
        let tree = db.open_tree(TREE)?;
        let parked = ParkedMessages::open(&db)?;
        Ok(CheckpointStore { db, tree, parked })
    }

    /// The messages refused from JetStream.
    pub fn parked(&self) -> &ParkedMessages {
        &self.parked
    }

    /// The stored checkpoint; a fresh one if there is none, or if it is of another format or
    /// does not decode (it is rebuilt from the log: the log is the record, this is a cache).
    pub fn load<P: Projection>(&self) -> Result<Checkpointed<P>, CheckpointError> {
        let Some(bytes) = self.tree.get(KEY)? else {
            return Ok(Checkpointed::default());
        };
        let decoded = match bytes.split_first() {
            Some((&FORMAT, body)) => {
                bincode::serde::decode_from_slice(body, bincode::config::standard())
                    .map(|(value, _)| value)
                    .map_err(|e| e.to_string())
            }
            Some((format, _)) => Err(format!("format {format}")),
            None => Err("empty".to_string()),
        };
        Ok(decoded.unwrap_or_else(|reason| {
            tracing::warn!(%reason, "stored checkpoint unusable: rebuilding from the log");
            Checkpointed::default()
        }))
    }

    /// Stores `checkpoint` and flushes it to disk before returning.
    pub fn save<P: Projection>(&self, checkpoint: &Checkpointed<P>) -> Result<(), CheckpointError> {
        let mut bytes = vec![FORMAT];
        bytes.extend(bincode::serde::encode_to_vec(
            checkpoint,
            bincode::config::standard(),
        )?);
        self.tree.insert(KEY, bytes)?;
        self.db.flush()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::incoming::Incoming;

    #[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
    struct Count(u64);

    impl Projection for Count {
        fn apply(&mut self, _: &Incoming) -> Result<(), String> {
            self.0 += 1;
            Ok(())
        }
    }

    #[test]
    fn a_checkpoint_survives_reopening_and_a_foreign_one_is_rebuilt() {
        let dir = tempfile::tempdir().expect("tempdir");
        let saved = Checkpointed {
            projection: Count(7),
            sequence: 7,
            hash: [3; 32],
            recorded_at_us: 1_700_000_000_000_000,
        };
        {
            let store = CheckpointStore::open(dir.path()).expect("open");
            assert_eq!(
                store.load::<Count>().expect("load"),
                Checkpointed::default()
            );
            store.save(&saved).expect("save");
        }
        let store = CheckpointStore::open(dir.path()).expect("reopen");
        assert_eq!(store.load::<Count>().expect("load"), saved);

        store
            .tree
            .insert(KEY, vec![FORMAT + 1, 1, 2])
            .expect("insert");
        assert_eq!(
            store.load::<Count>().expect("load"),
            Checkpointed::default()
        );
        store.tree.insert(KEY, vec![FORMAT, 0xff]).expect("insert");
        assert_eq!(
            store.load::<Count>().expect("load"),
            Checkpointed::default()
        );
    }
}
