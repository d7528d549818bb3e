//! Opening the sled directory.
//!
//! sled 0.34 takes an exclusive `flock` on `<dir>/db` when it opens, and releases it only
//! when its background threads let go of the file after the last handle drops — a moment
//! *after* `drop` returns (spacejam/sled#1234, #1289). A process that closes a store and
//! opens it again at once (a restart in place, an offline verification after shutdown, a
//! test) can find its own lock still held. [`open_db`] waits a bounded time for that lock;
//! any other error, or a lock still held after [`LOCK_WAIT`], is returned as it is.
//!
//! sled panics on some damaged files instead of returning an error (a page it recovered as
//! uninitialised, which it then fails to write into a snapshot). [`open_db`] turns such a panic
//! into an error naming the directory, so a damaged store is reported, not crashed on.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::time::{Duration, Instant};

/// How long [`open_db`] waits for a lock this process is still releasing.
pub const LOCK_WAIT: Duration = Duration::from_secs(2);

/// Opens `config`, retrying while the directory's lock is held, for up to [`LOCK_WAIT`].
pub fn open_db(config: &sled::Config) -> sled::Result<sled::Db> {
    let started = Instant::now();
    let mut pause = Duration::from_millis(5);
    loop {
        match open_once(config) {
            Err(error) if is_lock_held(&error) && started.elapsed() < LOCK_WAIT => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(100));
            }
            result => return result,
        }
    }
}

/// One `sled::Config::open`, a panic inside it returned as an error.
fn open_once(config: &sled::Config) -> sled::Result<sled::Db> {
    catch_unwind(AssertUnwindSafe(|| config.open())).unwrap_or_else(|panic| {
        let reason = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_string()))
            .unwrap_or_else(|| "a panic".to_string());
        Err(sled::Error::ReportableBug(format!(
            "sled could not read {}: {reason}",
            config.get_path().display()
        )))
    })
}

/// Opens the sled directory at `path` with sled's defaults (for tools and tests that read
/// or edit a stopped store's tree directly), waiting for the lock as [`open_db`] does.
pub fn open_dir(path: &Path) -> sled::Result<sled::Db> {
    open_db(&sled::Config::new().path(path))
}

/// sled reports a held lock only as text inside an `io::Error` of kind `Other`.
fn is_lock_held(error: &sled::Error) -> bool {
    matches!(error, sled::Error::Io(io) if io.to_string().contains("could not acquire lock"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_held_by_another_handle_is_reported_after_the_wait() {
        let dir = tempfile::tempdir().expect("tempdir");
        let _held = open_dir(dir.path()).expect("first open");
        let started = Instant::now();
        let error = open_dir(dir.path()).expect_err("the lock is held");
        assert!(is_lock_held(&error), "{error:?}");
        assert!(started.elapsed() >= LOCK_WAIT);
    }

    #[test]
    fn a_dropped_handle_can_be_reopened_at_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        for n in 0..20u8 {
            let db = open_dir(dir.path()).expect("opens");
            db.insert([n], &[n]).expect("insert");
            db.flush().expect("flush");
        }
    }
}
