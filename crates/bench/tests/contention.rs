//! The contention benchmark small: a 5,000-event ledger, commands acknowledged with and without
//! readers streaming it. The run checks itself (every command recorded once, every pass of
//! every reader gapless, the head where it must be); no timings are asserted.

use bench::contention::{self, ContentionScale};

#[test]
fn the_contention_benchmark_runs_and_checks_itself() -> anyhow::Result<()> {
    let scale = ContentionScale::quick();
    let rounds = contention::run(scale)?;
    assert_eq!(rounds.len(), 2 * scale.rounds);
    for (index, round) in rounds.iter().enumerate() {
        let readers = if index % 2 == 0 { 0 } else { scale.readers };
        assert_eq!(round.readers, readers);
        assert_eq!(round.ack.count() as u64, scale.commands);
        if readers == 0 {
            assert_eq!(round.passes, 0);
        } else {
            assert!(round.passes > 0, "the readers read the whole log");
        }
    }
    let table = contention::table(scale, &rounds);
    assert_eq!(table.lines().count(), 2 + rounds.len(), "{table}");
    Ok(())
}
