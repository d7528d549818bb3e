//! Reading a stopped ledger's sled directory on one thread while the audit works on what was
//! read on another.
//!
//! An audit of `--data-dir` is a sled scan (the store's pages read from disk), decoding (with
//! the hash check) and work on each event (a fold, or hashing and checking), each of about the
//! same cost an event (`crates/bench/README.md`). Done in turn on one thread they add up; split
//! across two they cost the longer side: a replay reads on one and folds on the other, and decodes on whichever is
//! idle (`source::StoredPage`).

use std::ops::ControlFlow;
use std::sync::mpsc;

/// Events read from a stopped ledger's directory in one page.
pub(crate) const PAGE_EVENTS: usize = 4_096;

/// Pages read ahead of the one being worked on: enough to ride out a slow read, few enough
/// that memory stays a few pages' worth.
const PAGES_AHEAD: usize = 4;

/// Runs `read` on a thread of its own and hands each page it yields to `work` on this one, in
/// order, until `read` runs out, either side fails, or `work` breaks. `read` builds the page
/// iterator on the reading thread (sled's iterators stay on the thread that made them). A
/// failed read ends the reading; the error reaches the caller after the pages before it.
pub fn read_ahead<T, I, B>(
    read: impl FnOnce() -> I + Send,
    mut work: impl FnMut(T) -> anyhow::Result<ControlFlow<B>>,
) -> anyhow::Result<ControlFlow<B>>
where
    T: Send,
    I: Iterator<Item = anyhow::Result<T>>,
{
    std::thread::scope(|scope| {
        let (pages, received) = mpsc::sync_channel(PAGES_AHEAD);
        scope.spawn(move || {
            for page in read() {
                let failed = page.is_err();
                // A send fails once the worker has stopped listening: stop reading too.
                if pages.send(page).is_err() || failed {
                    break;
                }
            }
        });
        for page in received {
            if let ControlFlow::Break(value) = work(page?)? {
                return Ok(ControlFlow::Break(value));
            }
        }
        Ok(ControlFlow::Continue(()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numbers(to: u32, fail_at: Option<u32>) -> impl Iterator<Item = anyhow::Result<u32>> {
        (1..=to).map(move |n| match fail_at {
            Some(bad) if n == bad => Err(anyhow::anyhow!("page {n} unreadable")),
            _ => Ok(n),
        })
    }

    #[test]
    fn every_page_arrives_in_order() {
        let mut seen = Vec::new();
        let flow: ControlFlow<()> = read_ahead(
            || numbers(1_000, None),
            |n| {
                seen.push(n);
                Ok(ControlFlow::Continue(()))
            },
        )
        .unwrap();
        assert_eq!(flow, ControlFlow::Continue(()));
        assert_eq!(seen, (1..=1_000).collect::<Vec<_>>());
    }

    #[test]
    fn a_failed_read_is_reported_after_the_pages_before_it() {
        let mut seen = Vec::new();
        let error = read_ahead::<_, _, ()>(
            || numbers(100, Some(7)),
            |n| {
                seen.push(n);
                Ok(ControlFlow::Continue(()))
            },
        )
        .unwrap_err();
        assert_eq!(error.to_string(), "page 7 unreadable");
        assert_eq!(seen, vec![1, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn the_reader_stops_when_the_work_breaks_or_fails() {
        use std::sync::atomic::{AtomicU32, Ordering};
        // A long supply of pages, counting how many were read: a reader that went on after the
        // work stopped would read them all.
        let read = AtomicU32::new(0);
        let counted = || {
            numbers(1_000_000, None).inspect(|_| {
                read.fetch_add(1, Ordering::Relaxed);
            })
        };
        let most = |stopped_at: u32| stopped_at + PAGES_AHEAD as u32 + 1;
        let flow = read_ahead(counted, |n| {
            Ok(if n == 3 {
                ControlFlow::Break(n)
            } else {
                ControlFlow::Continue(())
            })
        })
        .unwrap();
        assert_eq!(flow, ControlFlow::Break(3));
        assert!(read.load(Ordering::Relaxed) <= most(3), "{read:?}");

        read.store(0, Ordering::Relaxed);
        let error = read_ahead::<_, _, ()>(counted, |n| {
            anyhow::ensure!(n < 5, "page {n} does not verify");
            Ok(ControlFlow::Continue(()))
        })
        .unwrap_err();
        assert_eq!(error.to_string(), "page 5 does not verify");
        assert!(read.load(Ordering::Relaxed) <= most(5), "{read:?}");
    }
}
