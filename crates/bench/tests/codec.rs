//! The reading-one-event benchmark small: 5,000 events, every step run and checking itself
//! (every sequence decoded, the decoded log folding to the in-memory fold, every scan reading
//! every value, paged or not). No timings are asserted.

use bench::codec::{self, CodecScale};
use bench::report;

#[test]
fn the_codec_benchmark_runs_and_checks_itself() -> anyhow::Result<()> {
    let scale = CodecScale {
        events: 5_000,
        years: 1,
        passes: 2,
    };
    let run = codec::run(scale)?;
    assert_eq!(run.events, 5_000);
    // Decode, hash, decode + fold; then a first and later scans for each of two caches, and
    // for the events one to a sled key.
    assert_eq!(run.steps.len(), 3 + 2 * 2 + 2);
    for step in &run.steps {
        assert_eq!(step.events, 5_000, "{}", step.name);
        let passes = if step.name.contains("first after opening") {
            1
        } else {
            2
        };
        assert_eq!(step.times.len(), passes, "{}", step.name);
    }
    let table = report::codec_table(&run);
    assert_eq!(table.lines().count(), 2 + run.steps.len(), "{table}");
    Ok(())
}
