//! Logging a trouble that lasts without logging in a loop.
//!
//! A service retrying against a NATS server that is gone, a stream that was wiped or a
//! consumer that was lost hits the same error on every attempt. Logged each time, that fills
//! a disk (a lost consumer once logged the same line 1.4 million times); logged never, nobody
//! knows. An [`Alarm`] logs a warning when the trouble starts or changes, a reminder at most
//! every so often while it lasts (with how many times it recurred meanwhile), and one line
//! when it is over.

use std::time::{Duration, Instant};

/// How often a lasting trouble is logged again, by default.
pub const REMIND_EVERY: Duration = Duration::from_secs(60);

/// One kind of trouble a task can be in (say, "the relay cannot publish"), logged on change.
#[derive(Debug)]
pub struct Alarm {
    /// What is in trouble, for the log (`relay`, `consumer positiond`).
    what: String,
    remind_every: Duration,
    raised: Option<Raised>,
}

#[derive(Debug)]
struct Raised {
    /// The trouble's kind: a change of kind is a new trouble.
    state: String,
    since: Instant,
    reminded: Instant,
    /// Times raised since last logged.
    repeats: u64,
}

/// What [`Alarm::raise`] logged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Logged {
    /// A new trouble (none before, or another kind): a warning.
    Changed,
    /// The same trouble, and the reminder was due.
    Reminder,
    /// The same trouble, logged recently: nothing.
    Quiet,
}

impl Alarm {
    pub fn new(what: impl Into<String>) -> Self {
        Alarm::with_reminder(what, REMIND_EVERY)
    }

    pub fn with_reminder(what: impl Into<String>, remind_every: Duration) -> Self {
        Alarm {
            what: what.into(),
            remind_every,
            raised: None,
        }
    }

    /// Whether a trouble is raised.
    pub fn is_raised(&self) -> bool {
        self.raised.is_some()
    }

    /// The trouble's kind, while raised.
    pub fn state(&self) -> Option<&str> {
        self.raised.as_ref().map(|r| r.state.as_str())
    }

    /// Reports that trouble `state` (a short, stable kind) holds now, `detail` being this
    /// occurrence's error. Logs a warning if the state is new, a reminder if the last line
    /// about it is [`REMIND_EVERY`] old, nothing otherwise.
    pub fn raise(&mut self, state: &str, detail: &dyn std::fmt::Display) -> Logged {
        let logged = self.raise_at(Instant::now(), state);
        let what = &self.what;
        match (logged, &self.raised) {
            (Logged::Changed, _) => tracing::warn!(%what, state, %detail, "trouble: {state}"),
            (Logged::Reminder, Some(raised)) => tracing::warn!(
                %what,
                state,
                %detail,
                since_s = raised.since.elapsed().as_secs(),
                recurred = raised.repeats,
                "still in trouble: {state}"
            ),
            _ => tracing::debug!(%what, state, %detail, "trouble persists"),
        }
        if logged != Logged::Quiet
            && let Some(raised) = &mut self.raised
        {
            raised.repeats = 0;
        }
        logged
    }

    fn raise_at(&mut self, now: Instant, state: &str) -> Logged {
        match &mut self.raised {
            Some(raised) if raised.state == state => {
                raised.repeats += 1;
                if now.saturating_duration_since(raised.reminded) >= self.remind_every {
                    raised.reminded = now;
                    Logged::Reminder
                } else {
                    Logged::Quiet
                }
            }
            _ => {
                self.raised = Some(Raised {
                    state: state.to_string(),
                    since: now,
                    reminded: now,
                    repeats: 0,
                });
                Logged::Changed
            }
        }
    }

    /// The trouble is over (if there was one): logged once.
    pub fn clear(&mut self, how: &str) {
        if let Some(raised) = self.raised.take() {
            let what = &self.what;
            tracing::info!(
                %what,
                was = %raised.state,
                lasted_ms = raised.since.elapsed().as_millis() as u64,
                "trouble over: {how}"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lasting_trouble_is_logged_on_change_then_reminded_not_repeated() {
        let ms = Duration::from_millis;
        let start = Instant::now();
        let mut alarm = Alarm::with_reminder("test", ms(1_000));
        assert_eq!(alarm.raise_at(start, "down"), Logged::Changed);
        // A thousand failures within the reminder interval: nothing more.
        for i in 1..=1_000 {
            assert_eq!(alarm.raise_at(start + ms(i - 1), "down"), Logged::Quiet);
        }
        assert_eq!(alarm.raise_at(start + ms(1_000), "down"), Logged::Reminder);
        assert_eq!(alarm.raise_at(start + ms(1_500), "down"), Logged::Quiet);
        // Another kind of trouble is a change, logged at once.
        assert_eq!(alarm.raise_at(start + ms(1_501), "lost"), Logged::Changed);
        assert_eq!(alarm.state(), Some("lost"));
        alarm.clear("recovered");
        assert!(!alarm.is_raised());
        assert_eq!(alarm.raise_at(start + ms(1_502), "lost"), Logged::Changed);
    }
}
