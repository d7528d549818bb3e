//! Facts with their transaction time: every value the projection holds is kept as an
//! append-only list of `(sequence, value)`, so the value *as recorded at* any sequence is one
//! binary search away and nothing is ever refolded.
//!
//! - [`History`] holds a fact that is replaced (a member's latest return for a month, a plan
//!   revision, a contract's payment model): the value at `S` is the last one recorded at or
//!   before `S`.
//! - [`Running`] holds an amount that accumulates (what a contract is worth in a month, what a
//!   partner has paid): each entry is the running total after that sequence, so the total at `S`
//!   is also one binary search, not a sum.
//!
//! Sequences only grow (the projection refuses an event that is not after the last one), so
//! each list is sorted by construction.

use serde::{Deserialize, Serialize};

use crate::money::{MoneyError, Pence};

/// A replaced fact: `(sequence, value)`, sequences strictly increasing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct History<T> {
    entries: Vec<(u64, T)>,
}

impl<T> Default for History<T> {
    fn default() -> Self {
        History {
            entries: Vec::new(),
        }
    }
}

impl<T> History<T> {
    /// A history whose first value was recorded at `sequence`.
    pub fn new(sequence: u64, value: T) -> Self {
        History {
            entries: vec![(sequence, value)],
        }
    }

    /// Records `value` at `sequence`; a second value at the same sequence replaces the first
    /// (one event may restate a fact).
    pub fn record(&mut self, sequence: u64, value: T) {
        match self.entries.last_mut() {
            Some((last, current)) if *last == sequence => *current = value,
            _ => self.entries.push((sequence, value)),
        }
    }

    /// The value as recorded at `sequence`: the last one recorded at or before it.
    pub fn at(&self, sequence: u64) -> Option<&T> {
        let index = self.entries.partition_point(|(s, _)| *s <= sequence);
        index
            .checked_sub(1)
            .and_then(|i| self.entries.get(i))
            .map(|(_, value)| value)
    }

    /// The value as recorded at `sequence`, with the sequence that recorded it.
    pub fn entry_at(&self, sequence: u64) -> Option<(u64, &T)> {
        let index = self.entries.partition_point(|(s, _)| *s <= sequence);
        index
            .checked_sub(1)
            .and_then(|i| self.entries.get(i))
            .map(|(s, value)| (*s, value))
    }

    /// The latest value.
    pub fn latest(&self) -> Option<&T> {
        self.entries.last().map(|(_, value)| value)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// An accumulating amount: `(sequence, running total after it)`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Running {
    totals: History<Pence>,
}

impl Running {
    /// The total as recorded at `sequence` (zero before the first amount).
    pub fn at(&self, sequence: u64) -> Pence {
        self.totals.at(sequence).copied().unwrap_or_default()
    }

    /// The latest total.
    pub fn latest(&self) -> Pence {
        self.totals.latest().copied().unwrap_or_default()
    }

    /// The total after adding `amount`, without changing anything.
    pub fn after_adding(&self, amount: Pence) -> Result<Pence, MoneyError> {
        self.latest().checked_add(amount)
    }

    /// Records `total` (computed by [`Running::after_adding`]) at `sequence`. An unchanged
    /// total records nothing, so zero postings cost no space.
    pub fn record_total(&mut self, sequence: u64, total: Pence) {
        if total != self.latest() {
            self.totals.record(sequence, total);
        }
    }

    /// Number of recorded totals.
    pub fn len(&self) -> usize {
        self.totals.len()
    }

    pub fn is_empty(&self) -> bool {
        self.totals.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_history_answers_as_recorded_at_any_sequence() {
        let mut h = History::new(3, "a");
        h.record(7, "b");
        h.record(7, "c");
        h.record(10, "d");
        assert_eq!(h.at(0), None);
        assert_eq!(h.at(2), None);
        assert_eq!(h.at(3), Some(&"a"));
        assert_eq!(h.at(6), Some(&"a"));
        assert_eq!(h.at(7), Some(&"c"));
        assert_eq!(h.entry_at(9), Some((7, &"c")));
        assert_eq!(h.at(u64::MAX), Some(&"d"));
        assert_eq!(h.len(), 3);
    }

    #[test]
    fn a_running_total_is_one_lookup_and_zero_postings_cost_nothing() {
        let mut r = Running::default();
        for (sequence, amount) in [(1, 100), (2, 0), (4, -30), (9, 5)] {
            let total = r.after_adding(Pence::new(amount)).expect("in range");
            r.record_total(sequence, total);
        }
        assert_eq!(r.len(), 3);
        assert_eq!(r.at(0), Pence::ZERO);
        assert_eq!(r.at(1), Pence::new(100));
        assert_eq!(r.at(3), Pence::new(100));
        assert_eq!(r.at(4), Pence::new(70));
        assert_eq!(r.latest(), Pence::new(75));
        let full = Running {
            totals: History::new(1, Pence::MAX),
        };
        assert!(full.after_adding(Pence::new(1)).is_err());
    }
}
