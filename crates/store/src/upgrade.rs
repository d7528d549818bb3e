//! Upgrading a stopped ledger's store from an earlier on-disk format, into a new directory.
//!
//! - Format 2 kept each event under its own key (`e` ‖ sequence → body ‖ hash) and each
//!   request's idempotency record under its own key (`i` ‖ request id).
//! - Format 3 keeps the events in pages (`pages`), sixteen to a key.
//! - Format 4 (this build) also keeps the idempotency records of a batch under one key, a
//!   request page (`requests`), and no stream index: the records say where each stream's
//!   events are, and the store builds the index from them in memory.
//!
//! Nothing else changed: the meta head, cursors and checkpoints are copied as they are, and so
//! is every event's and record's bytes. The old stream-index runs are left behind. The old directory is only read, so an
//! upgrade that fails or is interrupted leaves it as it was; the operator points ledgerd at
//! the new directory once the upgrade has succeeded.

use std::path::Path;

use crate::error::StoreError;
use crate::keys;
use crate::pages::{self, OpenPage};
use crate::requests::{self, Index, Written};

/// The format before pages.
pub const FORMAT_2: &[u8] = b"ics-ledger-store/2";
/// The format before request pages.
pub const FORMAT_3: &[u8] = b"ics-ledger-store/3";

/// Whether `marker` names a format [`upgrade`] copies from.
pub(crate) fn is_earlier_format(marker: &[u8]) -> bool {
    marker == FORMAT_2 || marker == FORMAT_3
}

/// The refusal of a store of an earlier format in `dir` by this build's readers, saying how to
/// upgrade it.
pub(crate) fn earlier_format_refused(dir: &Path, marker: &[u8]) -> StoreError {
    StoreError::Corrupt(format!(
        "{} is in format {:?}, an earlier layout than this build's {:?}: copy it into this \
         build's format with `icsctl store upgrade --from {0} --to NEW` (ledgerd stopped) and \
         use NEW",
        dir.display(),
        String::from_utf8_lossy(marker),
        String::from_utf8_lossy(keys::FORMAT_MARKER),
    ))
}

/// Events written per sled batch while upgrading.
const BATCH_EVENTS: usize = 4_096;

/// Idempotency records per request page written by an upgrade.
const PAGE_REQUESTS: usize = 64;

/// What an upgrade copied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Upgraded {
    /// Events, now in pages.
    pub events: u64,
    /// Idempotency records, now in request pages.
    pub requests: u64,
    /// Stream-index runs, left behind (the store builds its index from the records).
    pub runs: u64,
    /// Every other record, copied as it was (the format marker excepted).
    pub records: u64,
}

/// Copies the format-2 or format-3 store in `from` into `to` in this build's format and
/// flushes it. `to` must not exist yet, or be an empty directory. Refuses a store of any other
/// format, and one whose events are not the gapless run 1, 2, 3, … up to its meta head
/// (nothing is guessed).
pub fn upgrade(from: &Path, to: &Path) -> Result<Upgraded, StoreError> {
    let refuse = |why: String| Err(StoreError::Upgrade(why));
    if !from.join("conf").exists() {
        return refuse(format!("{} holds no sled database", from.display()));
    }
    if to.exists() && std::fs::read_dir(to).map_or(true, |mut dir| dir.next().is_some()) {
        return refuse(format!(
            "{} already exists and is not empty: the upgrade writes a new store",
            to.display()
        ));
    }
    let source = crate::open::open_dir(from)?.open_tree(keys::TREE_NAME)?;
    let paged = match source.get(keys::meta_format())? {
        Some(marker) if marker.as_ref() == FORMAT_2 => false,
        Some(marker) if marker.as_ref() == FORMAT_3 => true,
        Some(marker) if marker.as_ref() == keys::FORMAT_MARKER => {
            return refuse(format!(
                "{} is already in format {}",
                from.display(),
                String::from_utf8_lossy(keys::FORMAT_MARKER)
            ));
        }
        other => {
            return refuse(format!(
                "{} is not a format-2 or format-3 ICS Ledger store (format marker {:?})",
                from.display(),
                other.map(|m| String::from_utf8_lossy(&m).into_owned())
            ));
        }
    };

    let db = crate::open::open_db(
        &sled::Config::new()
            .path(to)
            .flush_every_ms(None)
            .mode(sled::Mode::HighThroughput),
    )?;
    let target = db.open_tree(keys::TREE_NAME)?;
    let mut upgraded = Upgraded {
        events: 0,
        requests: 0,
        runs: 0,
        records: 0,
    };
    let mut events = Events {
        page: OpenPage::empty(1),
        pending: Vec::with_capacity(BATCH_EVENTS),
        batch: sled::Batch::default(),
        count: 0,
        last_hash: None,
    };
    // `(first sequence, request id, record)`: request ids are random, so the records come in
    // no useful order; they are paged in the order of the events they wrote.
    let mut records = Vec::new();
    for entry in source.iter() {
        let (key, value) = entry?;
        if key.as_ref() == keys::meta_format().as_slice() {
            continue;
        }
        if key.first() == Some(&keys::PREFIX_IDEMPOTENCY) {
            let request_id: [u8; 16] = key[1..].try_into().map_err(|_| {
                StoreError::Upgrade(format!("an idempotency key of {} bytes", key.len()))
            })?;
            let first = crate::codec::decode_idempotency_view(&value)
                .map_err(|e| refused_record(&request_id, &e.to_string()))?
                .first_sequence;
            records.push((first, request_id, value));
            continue;
        }
        if key.first() == Some(&keys::PREFIX_STREAM_INDEX) {
            upgraded.runs += 1;
            continue;
        }
        let Some(first) = keys::event_sequence(&key) else {
            events.batch.insert(key, value);
            upgraded.records += 1;
            continue;
        };
        if paged {
            for entry in pages::Entries::new(&value) {
                let (sequence, range) = entry
                    .map_err(|e| StoreError::Upgrade(format!("the page of event {first}: {e}")))?;
                events.push(sequence, value.subslice(range.start, range.len()), &target)?;
            }
        } else {
            events.push(first, value, &target)?;
        }
    }
    upgraded.events = events.count;
    let head = source
        .get(keys::meta_head())?
        .and_then(|head| keys::decode_meta_head(&head));
    if head != events.last_hash.map(|hash| (events.count, hash)) {
        return refuse(format!(
            "the old store's events end at {} but its head is {:?}",
            events.count,
            head.map(|(sequence, _)| sequence)
        ));
    }
    let mut batch = events.finish();

    records.sort_unstable_by_key(|(first, _, _)| *first);
    // The records must tile the events as the store will check when it reads them: found
    // here, a gap refuses the upgrade rather than the upgraded store's first append.
    let mut index = Index::default();
    for page_records in records.chunks(PAGE_REQUESTS) {
        let first = page_records[0].0;
        let mut page = Vec::new();
        for (_, request_id, record) in page_records {
            let view = crate::codec::decode_idempotency_view(record)
                .map_err(|e| refused_record(request_id, &e.to_string()))?;
            index
                .add(first, *request_id, Written::from(&view))
                .map_err(|e| refused_record(request_id, &e))?;
            requests::push_entry(&mut page, request_id, record);
        }
        batch.insert(&keys::requests(first), page);
    }
    if index.end() != upgraded.events {
        return refuse(format!(
            "the old store's idempotency records end at event {}, its events at {}",
            index.end(),
            upgraded.events
        ));
    }
    upgraded.requests = records.len() as u64;
    batch.insert(keys::meta_format(), keys::FORMAT_MARKER);
    target.apply_batch(batch)?;
    target.flush()?;
    Ok(upgraded)
}

/// The old store's events, checked to run 1, 2, 3, … and laid out in pages.
struct Events {
    page: OpenPage,
    pending: Vec<(u64, sled::IVec)>,
    batch: sled::Batch,
    count: u64,
    /// The stored hash of the last event pushed.
    last_hash: Option<[u8; crate::codec::HASH_LEN]>,
}

impl Events {
    fn push(
        &mut self,
        sequence: u64,
        value: sled::IVec,
        target: &sled::Tree,
    ) -> Result<(), StoreError> {
        let expected = self.count + 1;
        if sequence != expected {
            return Err(StoreError::Upgrade(format!(
                "the old store's events skip from {} to {sequence}",
                expected - 1
            )));
        }
        let (_, hash) = crate::codec::split_value(&value)
            .map_err(|e| StoreError::Upgrade(format!("event {sequence}: {e}")))?;
        self.last_hash = Some(hash);
        self.pending.push((sequence, value));
        self.count += 1;
        if self.pending.len() == BATCH_EVENTS {
            self.page.append(as_parts(&self.pending), &mut self.batch);
            self.pending.clear();
            target.apply_batch(std::mem::take(&mut self.batch))?;
        }
        Ok(())
    }

    /// The batch holding what is left (the last pages and the records read since the last
    /// batch was written).
    fn finish(mut self) -> sled::Batch {
        self.page.append(as_parts(&self.pending), &mut self.batch);
        self.batch
    }
}

fn refused_record(request_id: &[u8; 16], why: &str) -> StoreError {
    StoreError::Upgrade(format!(
        "the idempotency record of request {}: {why}",
        hex::encode(request_id)
    ))
}

/// Stored values as [`OpenPage::append`] takes them: each in one part.
fn as_parts(events: &[(u64, sled::IVec)]) -> impl Iterator<Item = (u64, [&[u8]; 1])> {
    events
        .iter()
        .map(|(sequence, value)| (*sequence, [value.as_ref()]))
}

/// Writes the (stopped) store in `from` into `to` as format 2 laid it out — each event, each
/// idempotency record and each request's stream-index run under its own key, everything else
/// as it is. Only for tests of
/// [`upgrade`], which need a ledger written before pages and have no older build to write one.
#[doc(hidden)]
pub fn write_format_2_copy(from: &Path, to: &Path) -> Result<(), StoreError> {
    write_earlier_format_copy(from, to, FORMAT_2)
}

/// Writes the (stopped) store in `from` into `to` as format 3 laid it out — events in pages,
/// each idempotency record and each request's stream-index run under its own key. Only for
/// tests of [`upgrade`].
#[doc(hidden)]
pub fn write_format_3_copy(from: &Path, to: &Path) -> Result<(), StoreError> {
    write_earlier_format_copy(from, to, FORMAT_3)
}

fn write_earlier_format_copy(from: &Path, to: &Path, format: &[u8]) -> Result<(), StoreError> {
    let source = crate::open::open_dir(from)?.open_tree(keys::TREE_NAME)?;
    let target = crate::open::open_dir(to)?.open_tree(keys::TREE_NAME)?;
    for entry in source.iter() {
        let (key, value) = entry?;
        if keys::event_sequence(&key).is_some() && format == FORMAT_2 {
            for event in pages::Entries::new(&value) {
                let (sequence, range) = event.map_err(StoreError::Corrupt)?;
                target.insert(keys::event(sequence), &value[range])?;
            }
        } else if keys::requests_sequence(&key).is_some() {
            for entry in requests::Entries::new(&value) {
                let (request_id, record) = entry.map_err(StoreError::Corrupt)?;
                target.insert(keys::idempotency(&request_id), record)?;
                let outcome = crate::codec::decode_idempotency(record)
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?
                    .outcome;
                let run = keys::Run {
                    first_version: outcome.first_version,
                    first_sequence: outcome.first_sequence,
                    count: outcome.last_sequence - outcome.first_sequence + 1,
                };
                target.insert(
                    keys::stream_run(&outcome.stream, run.first_version),
                    &run.value(),
                )?;
            }
        } else if key.as_ref() == keys::meta_format().as_slice() {
            target.insert(key, format)?;
        } else {
            target.insert(key, value)?;
        }
    }
    target.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_format_2_store_into_a_new_directory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (old, new) = (dir.path().join("old"), dir.path().join("new"));
        let nothing = upgrade(&old, &new).expect_err("no store");
        assert!(
            nothing.to_string().contains("holds no sled database"),
            "{nothing}"
        );

        let tree = crate::open::open_dir(&old)
            .and_then(|db| db.open_tree(keys::TREE_NAME))
            .expect("sled");
        tree.insert(keys::meta_format(), keys::FORMAT_MARKER)
            .expect("insert");
        tree.flush().expect("flush");
        drop(tree);
        let current = upgrade(&old, &new).expect_err("already format 4");
        assert!(
            current.to_string().contains("already in format"),
            "{current}"
        );

        std::fs::create_dir(&new).expect("mkdir");
        std::fs::write(new.join("x"), b"x").expect("write");
        let occupied = upgrade(&old, &new).expect_err("target not empty");
        assert!(occupied.to_string().contains("not empty"), "{occupied}");
    }
}
