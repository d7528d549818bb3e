//! Upgrading a stopped ledger's store from an earlier on-disk format, into a new directory.
//!
//! Format 2 kept each event under its own key (`e` ‖ sequence → body ‖ hash); format 3 keeps
//! them in pages (`pages`). Nothing else changed: stream runs, idempotency records, the meta
//! head, cursors and checkpoints are copied as they are. The old directory is only read, so
//! an upgrade that fails or is interrupted leaves it as it was; the operator points ledgerd at
//! the new directory once the upgrade has succeeded.

use std::path::Path;

use crate::error::StoreError;
use crate::keys;
use crate::pages::OpenPage;

/// The format before pages.
pub const FORMAT_2: &[u8] = b"ics-ledger-store/2";

/// The refusal of a format-2 store in `dir` by this build's readers, saying how to upgrade it.
pub(crate) fn format_2_refused(dir: &Path) -> StoreError {
    StoreError::Corrupt(format!(
        "{} is in format {:?}, from before events were kept in pages: copy it into this \
         build's format with `icsctl store upgrade --from {0} --to NEW` (ledgerd stopped) and \
         use NEW",
        dir.display(),
        String::from_utf8_lossy(FORMAT_2),
    ))
}

/// Events written per sled batch while upgrading.
const BATCH_EVENTS: usize = 4_096;

/// What an upgrade copied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Upgraded {
    /// Events, now in pages.
    pub events: u64,
    /// Every other record, copied as it was (the format marker excepted).
    pub records: u64,
}

/// Copies the format-2 store in `from` into `to` in this build's format and flushes it.
/// `to` must not exist yet, or be an empty directory. Refuses a store of any other format,
/// and one whose event keys are not the gapless run 1, 2, 3, … (nothing is guessed).
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
    match source.get(keys::meta_format())? {
        Some(marker) if marker.as_ref() == FORMAT_2 => {}
        Some(marker) if marker.as_ref() == keys::FORMAT_MARKER => {
            return refuse(format!(
                "{} is already in format {}",
                from.display(),
                String::from_utf8_lossy(keys::FORMAT_MARKER)
            ));
        }
        other => {
            return refuse(format!(
                "{} is not a format-2 ICS Ledger store (format marker {:?})",
                from.display(),
                other.map(|m| String::from_utf8_lossy(&m).into_owned())
            ));
        }
    }

    let db = crate::open::open_db(
        &sled::Config::new()
            .path(to)
            .flush_every_ms(None)
            .mode(sled::Mode::HighThroughput),
    )?;
    let target = db.open_tree(keys::TREE_NAME)?;
    let mut upgraded = Upgraded {
        events: 0,
        records: 0,
    };
    let mut page = OpenPage::empty(1);
    let mut events = Vec::with_capacity(BATCH_EVENTS);
    let mut batch = sled::Batch::default();
    for entry in source.iter() {
        let (key, value) = entry?;
        if key.as_ref() == keys::meta_format().as_slice() {
            continue;
        }
        let Some(sequence) = keys::event_sequence(&key) else {
            batch.insert(key, value);
            upgraded.records += 1;
            continue;
        };
        let expected = upgraded.events + 1;
        if sequence != expected {
            return refuse(format!(
                "the old store's events skip from {} to {sequence}",
                expected - 1
            ));
        }
        events.push((sequence, value));
        upgraded.events += 1;
        if events.len() == BATCH_EVENTS {
            page.append(as_parts(&events), &mut batch);
            events.clear();
            target.apply_batch(std::mem::take(&mut batch))?;
        }
    }
    page.append(as_parts(&events), &mut batch);
    batch.insert(keys::meta_format(), keys::FORMAT_MARKER);
    target.apply_batch(batch)?;
    target.flush()?;
    Ok(upgraded)
}

/// Stored values as [`OpenPage::append`] takes them: each in one part.
fn as_parts(events: &[(u64, sled::IVec)]) -> impl Iterator<Item = (u64, [&[u8]; 1])> {
    events
        .iter()
        .map(|(sequence, value)| (*sequence, [value.as_ref()]))
}

/// Writes the (stopped) store in `from` into `to` as format 2 laid it out — each event under
/// its own key, everything else as it is. Only for tests of [`upgrade`], which need a ledger
/// written before pages and have no older build to write one.
#[doc(hidden)]
pub fn write_format_2_copy(from: &Path, to: &Path) -> Result<(), StoreError> {
    let source = crate::open::open_dir(from)?.open_tree(keys::TREE_NAME)?;
    let target = crate::open::open_dir(to)?.open_tree(keys::TREE_NAME)?;
    for entry in source.iter() {
        let (key, value) = entry?;
        if keys::event_sequence(&key).is_some() {
            for event in crate::pages::Entries::new(&value) {
                let (sequence, range) = event.map_err(StoreError::Corrupt)?;
                target.insert(keys::event(sequence), &value[range])?;
            }
        } else if key.as_ref() == keys::meta_format().as_slice() {
            target.insert(key, FORMAT_2)?;
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
        let current = upgrade(&old, &new).expect_err("already format 3");
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
