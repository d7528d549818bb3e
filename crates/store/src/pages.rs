//! Events are kept in **pages**: up to [`PAGE_EVENTS_MAX`] consecutive events under one sled
//! key, `e` ‖ the first one's sequence.
//!
//! Why: sled's cost is per key, not per byte. It splits a leaf past 16 keys, and reading a key
//! means reading, deserializing and walking its leaf, so a log kept one event to a key scans
//! from disk several times slower than the same bytes sixteen to a key (`cargo bench -p bench
//! --bench codec`, `crates/bench/README.md`). Every whole-log read — replay, verification, a rebuild, `ReadStored` — goes at
//! that pace, and so does the writer's `apply_batch`: one insert per page rather than one per
//! event.
//!
//! A page is a run of entries, each `sequence u64 BE ‖ length u32 BE ‖ value`, the value being
//! the canonical body ‖ its hash ([`codec::split_value`](crate::codec::split_value)). Each
//! entry names its own sequence, so a page tells what it holds without trusting its key or
//! its neighbours: an event cut out of a page shows as the gap it is, two swapped as the
//! disorder they are.
//!
//! The writer keeps the last page open (`OpenPage`) and rewrites it with each batch until it
//! is full, so a ledger taking one command at a time fills pages as one taking thousands does;
//! each flush rewrites at most one page that was already on disk.

use crate::frames::{self, Cut, Frames};
use crate::keys;

/// Events a page holds at most.
pub const PAGE_EVENTS_MAX: usize = 16;

/// Bytes after which a page takes no more events (a single event larger than this has a
/// page of its own).
pub const PAGE_BYTES_MAX: usize = 16 * 1024;

/// The last page of the log, which the writer appends to until it is full.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct OpenPage {
    first: u64,
    next: u64,
    bytes: Vec<u8>,
}

impl OpenPage {
    /// A page with nothing in it yet, whose first event will be `next`.
    pub(crate) fn empty(next: u64) -> Self {
        OpenPage {
            first: next,
            next,
            bytes: Vec::new(),
        }
    }

    /// The stored page under the key of `first`, to append to. Its entries must be
    /// consecutive from `first`.
    pub(crate) fn stored(first: u64, page: &[u8]) -> Result<Self, String> {
        let mut next = first;
        for entry in Entries::new(page) {
            let (sequence, _) = entry?;
            if sequence != next {
                return Err(format!(
                    "the page of event {first} holds event {sequence} where {next} belongs"
                ));
            }
            next += 1;
        }
        Ok(OpenPage {
            first,
            next,
            bytes: page.to_vec(),
        })
    }

    fn events(&self) -> usize {
        (self.next - self.first) as usize
    }

    fn is_full(&self) -> bool {
        self.events() >= PAGE_EVENTS_MAX || self.bytes.len() >= PAGE_BYTES_MAX
    }

    /// Appends one event, given as the parts of its stored value (body and hash).
    fn push(&mut self, sequence: u64, parts: &[&[u8]]) {
        assert_eq!(sequence, self.next, "events are paged in sequence order");
        push_entry(&mut self.bytes, sequence, parts);
        self.next += 1;
    }

    /// If this page is full, starts the next one at `sequence` and returns the full one.
    fn roll(&mut self, sequence: u64) -> Option<OpenPage> {
        self.is_full()
            .then(|| std::mem::replace(self, OpenPage::empty(sequence)))
    }

    /// Appends `events` (consecutive, from the page's next sequence; each value in parts
    /// that are stored one after the other) to this page and the pages after it as each
    /// fills, and puts every page they change into `batch`. The last page stays open.
    pub(crate) fn append<'a, const N: usize>(
        &mut self,
        events: impl IntoIterator<Item = (u64, [&'a [u8]; N])>,
        batch: &mut sled::Batch,
    ) {
        let mut changed = false;
        for (sequence, parts) in events {
            if let Some(full) = self.roll(sequence)
                && changed
            {
                batch.insert(&keys::event(full.first), full.bytes);
            }
            self.push(sequence, &parts);
            changed = true;
        }
        if changed {
            batch.insert(&keys::event(self.first), self.bytes.clone());
        }
    }
}

/// `events` (consecutive sequences, each with its stored value) laid out in new pages exactly
/// as the writer lays them out: `(first sequence, page)` each. For benchmarks that write what
/// the store writes.
pub fn paginate<'a>(events: impl IntoIterator<Item = (u64, &'a [u8])>) -> Vec<(u64, Vec<u8>)> {
    let mut pages = Vec::new();
    let mut open: Option<OpenPage> = None;
    for (sequence, value) in events {
        let page = open.get_or_insert_with(|| OpenPage::empty(sequence));
        if let Some(full) = page.roll(sequence) {
            pages.push((full.first, full.bytes));
        }
        page.push(sequence, &[value]);
    }
    pages.extend(open.map(|page| (page.first, page.bytes)));
    pages
}

/// Appends one entry to a page's bytes: the sequence, the length, then the value's `parts`
/// one after the other (`frames`).
pub(crate) fn push_entry(page: &mut Vec<u8>, sequence: u64, parts: &[&[u8]]) {
    frames::push(page, &sequence.to_be_bytes(), parts);
}

/// The entries of a stored page: `(sequence, where its value lies in the page)`, in the
/// order stored; an error where the bytes stop making sense.
pub struct Entries<'a> {
    frames: Frames<'a, 8>,
}

impl<'a> Entries<'a> {
    pub fn new(page: &'a [u8]) -> Self {
        Entries {
            frames: Frames::new(page),
        }
    }
}

impl Iterator for Entries<'_> {
    type Item = Result<(u64, std::ops::Range<usize>), String>;

    fn next(&mut self) -> Option<Self::Item> {
        self.frames.next().map(entry)
    }
}

/// A framed entry of an event page, its tag read as the sequence it names.
fn entry(
    frame: Result<([u8; 8], std::ops::Range<usize>), Cut<8>>,
) -> Result<(u64, std::ops::Range<usize>), String> {
    match frame {
        Ok((tag, range)) => Ok((u64::from_be_bytes(tag), range)),
        Err(Cut::InHeader { at }) => Err(format!(
            "a page ends inside an entry's header, {at} bytes in"
        )),
        Err(Cut::InValue { tag, claims, left }) => Err(format!(
            "event {}'s entry claims {claims} bytes; its page has {left} left",
            u64::from_be_bytes(tag)
        )),
    }
}

/// Every event in a run of stored pages, as `(sequence its entry names, value)`, the values
/// sharing the pages' memory.
pub(crate) struct Events<I> {
    pages: I,
    page: Option<(sled::IVec, usize)>,
}

impl<I> Events<I> {
    pub(crate) fn new(pages: I) -> Self {
        Events { pages, page: None }
    }
}

impl<I> Iterator for Events<I>
where
    I: Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>>,
{
    type Item = Result<(u64, sled::IVec), crate::StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some((page, at)) = &mut self.page {
                let mut frames = Frames::<8> {
                    page: page.as_ref(),
                    at: *at,
                };
                if let Some(frame) = frames.next() {
                    *at = frames.at;
                    return Some(
                        entry(frame)
                            .map(|(sequence, range)| {
                                (sequence, page.subslice(range.start, range.len()))
                            })
                            .map_err(crate::StoreError::Corrupt),
                    );
                }
                self.page = None;
            }
            match self.pages.next()? {
                Ok((key, page)) => {
                    if keys::event_sequence(&key).is_none() {
                        return Some(Err(crate::StoreError::Corrupt(format!("page key {key:?}"))));
                    }
                    self.page = Some((page, 0));
                }
                Err(error) => return Some(Err(error.into())),
            }
        }
    }
}

/// The page holding `sequence`, if there is one, as `(key, page)`: the last page starting at
/// or before it (which may end before it, if the log is shorter or has lost it).
pub(crate) fn page_holding(
    tree: &sled::Tree,
    sequence: u64,
) -> sled::Result<Option<(sled::IVec, sled::IVec)>> {
    tree.range(keys::event(0)..=keys::event(sequence))
        .next_back()
        .transpose()
}

/// The stored value of event `sequence` (its entry found by the sequence it names), if any.
pub(crate) fn value_of(tree: &sled::Tree, sequence: u64) -> Result<Option<sled::IVec>, String> {
    let Some((_, page)) = page_holding(tree, sequence).map_err(|e| e.to_string())? else {
        return Ok(None);
    };
    for entry in Entries::new(&page) {
        let (named, range) = entry?;
        if named == sequence {
            return Ok(Some(page.subslice(range.start, range.len())));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(n: u8, len: usize) -> Vec<u8> {
        vec![n; len]
    }

    /// Events as the writer hands them to [`OpenPage::append`]: each value in one part.
    fn values(events: &[(u64, Vec<u8>)]) -> impl Iterator<Item = (u64, [&[u8]; 1])> {
        events
            .iter()
            .map(|(sequence, value)| (*sequence, [value.as_slice()]))
    }

    fn temporary_tree() -> sled::Tree {
        let db = sled::Config::new().temporary(true).open().expect("sled");
        db.open_tree("t").expect("tree")
    }

    /// One batch per element, each `(sequence, value)` in order.
    type Batches = [Vec<(u64, Vec<u8>)>];

    fn pages_of(batches: &Batches) -> sled::Tree {
        let tree = temporary_tree();
        let mut open = OpenPage::empty(1);
        for events in batches {
            let mut batch = sled::Batch::default();
            open.append(values(events), &mut batch);
            tree.apply_batch(batch).expect("apply");
        }
        tree
    }

    fn stored(tree: &sled::Tree) -> Vec<(u64, Vec<u64>)> {
        tree.iter()
            .map(|entry| {
                let (key, page) = entry.expect("read");
                let first = keys::event_sequence(&key).expect("page key");
                let sequences = Entries::new(&page).map(|e| e.expect("entry").0).collect();
                (first, sequences)
            })
            .collect()
    }

    #[test]
    fn a_page_is_bytes_that_never_change_by_accident() {
        // Golden bytes: two entries, sequence BE ‖ length BE ‖ value.
        let mut page = Vec::new();
        push_entry(&mut page, 1, &[b"a", b"b"]);
        push_entry(&mut page, 2, &[b"c"]);
        assert_eq!(
            hex::encode(&page),
            "0000000000000001000000026162\
             000000000000000200000001 63"
                .replace(' ', "")
        );
        let entries: Vec<_> = Entries::new(&page).map(|e| e.expect("entry")).collect();
        assert_eq!(entries, [(1, 12..14), (2, 26..27)]);
    }

    #[test]
    fn one_event_at_a_time_fills_pages_of_sixteen() {
        let writes: Vec<_> = (1..=40u64).map(|n| vec![(n, value(n as u8, 10))]).collect();
        let tree = pages_of(&writes);
        assert_eq!(
            stored(&tree),
            [
                (1, (1..=16).collect::<Vec<_>>()),
                (17, (17..=32).collect()),
                (33, (33..=40).collect()),
            ]
        );
    }

    #[test]
    fn a_batch_spanning_pages_writes_each_once_and_leaves_the_last_open() {
        let first: Vec<_> = (1..=5).map(|n| (n, value(1, 3))).collect();
        let second: Vec<_> = (6..=40).map(|n| (n, value(2, 3))).collect();
        let mut open = OpenPage::empty(1);
        open.append(values(&first), &mut sled::Batch::default());
        let mut batch = sled::Batch::default();
        open.append(values(&second), &mut batch);
        // Written by the second batch: the page of 1 (now full), 17 and 33 (open).
        let tree = temporary_tree();
        tree.apply_batch(batch).expect("apply");
        let firsts: Vec<u64> = stored(&tree).iter().map(|(first, _)| *first).collect();
        assert_eq!(firsts, [1, 17, 33]);
        assert_eq!((open.first, open.next), (33, 41));
        // A full page reopened is not written again: the next event starts a page, and that
        // page is all the batch holds.
        let full = tree.get(keys::event(17)).expect("read").expect("page 17");
        let mut reopened = OpenPage::stored(17, &full).expect("a whole page");
        let mut batch = sled::Batch::default();
        reopened.append(values(&[(33, value(3, 3))]), &mut batch);
        let alone = temporary_tree();
        alone.apply_batch(batch).expect("apply");
        assert_eq!(stored(&alone), [(33, vec![33])]);
    }

    #[test]
    fn paginate_lays_events_out_as_the_writer_does() {
        let events: Vec<_> = (1..=40u64).map(|n| (n, value(n as u8, 10))).collect();
        let written = pages_of(&events.iter().map(|e| vec![e.clone()]).collect::<Vec<_>>());
        let laid_out = paginate(events.iter().map(|(n, v)| (*n, v.as_slice())));
        let written: Vec<(u64, Vec<u8>)> = written
            .iter()
            .map(|entry| {
                let (key, page) = entry.expect("read");
                (keys::event_sequence(&key).expect("page key"), page.to_vec())
            })
            .collect();
        assert_eq!(laid_out, written);
        assert_eq!(paginate(std::iter::empty()), []);
    }

    #[test]
    fn a_large_event_closes_its_page() {
        let writes = vec![
            vec![(1, value(1, 10))],
            vec![(2, value(2, PAGE_BYTES_MAX))],
            vec![(3, value(3, 10))],
        ];
        let tree = pages_of(&writes);
        assert_eq!(stored(&tree), [(1, vec![1, 2]), (3, vec![3])]);
    }

    #[test]
    fn events_and_values_come_back_by_the_sequence_they_name() {
        let writes: Vec<_> = (1..=20u64)
            .map(|n| vec![(n, value(n as u8, n as usize))])
            .collect();
        let tree = pages_of(&writes);
        let events: Vec<(u64, Vec<u8>)> = Events::new(tree.iter())
            .map(|e| e.map(|(s, v)| (s, v.to_vec())).expect("event"))
            .collect();
        let expected: Vec<(u64, Vec<u8>)> = (1..=20u64)
            .map(|n| (n, value(n as u8, n as usize)))
            .collect();
        assert_eq!(events, expected);
        for n in 1..=20u64 {
            let found = value_of(&tree, n).expect("read").expect("there");
            assert_eq!(found.as_ref(), value(n as u8, n as usize).as_slice());
        }
        assert_eq!(value_of(&tree, 21).expect("read"), None);
        assert_eq!(
            page_holding(&tree, 18)
                .expect("read")
                .map(|(key, _)| key)
                .as_deref(),
            Some(&keys::event(17)[..])
        );
    }

    #[test]
    fn a_page_cut_short_is_an_error_not_a_panic() {
        let mut page = Vec::new();
        push_entry(&mut page, 7, &[b"hello"]);
        for cut in 1..page.len() {
            let entries: Vec<_> = Entries::new(&page[..cut]).collect();
            assert!(
                matches!(entries.as_slice(), [Err(_)]),
                "cut at {cut}: {entries:?}"
            );
        }
        assert!(
            OpenPage::stored(8, &page).is_err(),
            "names 7 under the key of 8"
        );
    }
}
