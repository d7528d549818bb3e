//! The audit benchmark small: 20,000 events, every path run and checking itself (counts,
//! verification with every checkpoint from both sources, roots, the replayed position,
//! every proof verified). No timings are asserted.

use bench::audit::{self, AuditScale, upkeep::Upkeep};
use bench::report;

#[test]
fn the_audit_benchmark_runs_and_checks_itself() -> anyhow::Result<()> {
    let scale = AuditScale {
        events: 20_000,
        // Each gRPC proof waits ~40 ms on Nagle's algorithm with ledgerd's sockets as they are.
        proofs: 50,
        ..AuditScale::quick()
    };
    let run = audit::run(scale)?;
    assert_eq!(run.events, 20_000);
    // A checkpoint every 1,000 events, signed by ledgerd's own audit task.
    assert!(run.checkpoints >= 20, "{} checkpoints", run.checkpoints);
    assert_eq!(run.upkeep.len(), Upkeep::ALL.len());
    for upkeep in &run.upkeep {
        assert_eq!(upkeep.events, 20_000);
        assert_eq!(upkeep.requests, run.commands);
    }
    for pass in run.replay.iter().chain(&run.verify) {
        assert_eq!(pass.events, 20_000, "{}", pass.name);
        assert_eq!(pass.times.len(), scale.passes, "{}", pass.name);
    }
    for name in [
        audit::REPLAY_DATA_DIR,
        audit::REPLAY_FOLD,
        audit::REPLAY_DECODE,
        audit::REPLAY_GRPC,
    ] {
        let rows = run.replay(name).len();
        assert_eq!(rows, 1, "{name}");
    }
    for name in [
        audit::VERIFY_ONLINE,
        audit::VERIFY_OFFLINE,
        audit::VERIFY_READ_STORED,
    ] {
        let rows = run.verification(name).len();
        assert_eq!(rows, 1, "{name}");
    }
    // Two kinds of proof at three depths (the method, the handler, gRPC).
    assert_eq!(run.proofs.len(), 6);
    assert!(run.proofs.iter().all(|p| p.latency.count() == scale.proofs));

    assert_eq!(
        report::audit_replay_table(&run).lines().count(),
        2 + run.replay.len()
    );
    assert_eq!(
        report::audit_verify_table(&run).lines().count(),
        2 + run.verify.len()
    );
    assert_eq!(report::audit_proof_table(&run).lines().count(), 2 + 6);
    assert_eq!(report::audit_upkeep_table(&run).lines().count(), 2 + 3);
    Ok(())
}
