//! The command path in-process, over a real sled store on disk: group commit across commands,
//! idempotency, expected versions, and state rebuilt from the log.

use std::sync::Arc;

use api::CommandMeta;
use domain::{
    Code, Command, ContractCommand, FinancialYear, MemberCode, MemberKind, Month, Pence, Period,
    SystemCommand, SystemId, Text,
};
use ledgerd::ledger::{Ledger, Store, SubmitError};
use store::{EventStore, StoreConfig};

fn member(code: &str) -> MemberCode {
    MemberCode::parse(code).expect("valid code")
}

fn text(t: &str) -> Text {
    Text::new(t).expect("valid text")
}

fn year() -> FinancialYear {
    FinancialYear::new(2018).expect("valid year")
}

fn setup() -> Vec<Command> {
    let admit = |code: &str, kind| {
        Command::System(SystemCommand::AdmitMember {
            member: member(code),
            name: text(code),
            kind,
            in_control_total: true,
        })
    };
    vec![
        Command::System(SystemCommand::Establish {
            system: SystemId::new("kav").expect("id"),
            name: text("Kingsmere"),
            first_year: year(),
        }),
        admit("KCCG", MemberKind::Commissioner),
        admit("KCHT", MemberKind::CommunityTrust),
        Command::Contract {
            contract: Code::new("C1").expect("code"),
            command: ContractCommand::Agree {
                commissioner: member("KCCG"),
                provider: member("KCHT"),
                year: year(),
                model: domain::contract::PaymentModel::Block {
                    annual_value: Pence::new(8_400_000_000),
                },
                description: text("Community services block"),
            },
        },
    ]
}

fn invoice(n: u32) -> Command {
    Command::Contract {
        contract: Code::new("C1").expect("code"),
        command: ContractCommand::RaiseInvoice {
            invoice: Code::new(format!("INV-{n}")).expect("code"),
            period: Period::new(year(), Month::new(1 + n % 12).expect("month")),
            amount: Pence::new(100),
            corrects: None,
        },
    }
}

/// Posts [`setup`].
async fn set_up(ledger: &Ledger) {
    for command in setup() {
        ledger
            .submit(CommandMeta::random(), "test", command)
            .await
            .expect("setup accepted");
    }
}

fn open(dir: &std::path::Path) -> (Store, Ledger) {
    let store = EventStore::open(StoreConfig::new(dir)).expect("store opens");
    let ledger =
        Ledger::recover(store.clone(), SystemId::new("kav").expect("id")).expect("ledger recovers");
    (store, ledger)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_commands_share_flushes_and_all_are_acknowledged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, ledger) = open(dir.path());
    set_up(&ledger).await;
    let before = store.stats();
    let ledger = Arc::new(ledger);
    let mut tasks = Vec::new();
    for writer in 0..32u32 {
        let ledger = Arc::clone(&ledger);
        tasks.push(tokio::spawn(async move {
            let mut sequences = Vec::new();
            for i in 0..50u32 {
                let outcome = ledger
                    .submit(CommandMeta::random(), "test", invoice(writer * 1_000 + i))
                    .await
                    .expect("accepted");
                sequences.push(outcome.last_sequence);
            }
            sequences
        }));
    }
    let mut sequences = Vec::new();
    for task in tasks {
        sequences.extend(task.await.expect("task"));
    }
    sequences.sort_unstable();
    let first = sequences[0];
    assert_eq!(
        sequences,
        (first..first + 1_600).collect::<Vec<_>>(),
        "gapless and each once"
    );
    let after = store.stats();
    let batches = after.batches_committed - before.batches_committed;
    let requests = after.requests_committed - before.requests_committed;
    assert_eq!(requests, 1_600);
    assert!(
        batches < requests,
        "group commit: {requests} commands in {batches} flushes"
    );
    store.verify_chain().expect("chain verifies");
}

#[tokio::test]
async fn a_resend_returns_the_first_outcome_and_a_changed_resend_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, ledger) = open(dir.path());
    set_up(&ledger).await;
    let meta = CommandMeta::random();
    let first = ledger
        .submit(meta, "test", invoice(1))
        .await
        .expect("accepted");
    let head = store.head();
    let again = ledger
        .submit(meta, "test", invoice(1))
        .await
        .expect("resend accepted");
    assert!(again.duplicate && !first.duplicate);
    assert_eq!(
        (again.first_sequence, again.hash),
        (first.first_sequence, first.hash)
    );
    assert_eq!(store.head(), head, "a resend writes nothing");
    let changed = ledger.submit(meta, "test", invoice(2)).await;
    assert!(
        matches!(changed, Err(SubmitError::RequestIdReused(_))),
        "{changed:?}"
    );
    assert_eq!(store.head(), head);
}

/// ledgerd alone answers resends — the store stops if one reaches it. A resend while the
/// first is still queued waits for its outcome; once durable, and after a restart, it is
/// answered from the store's record; the same request id with another command is refused
/// either way. Nothing is written twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resends_in_flight_and_after_a_restart_are_answered_by_the_ledger() {
    let dir = tempfile::tempdir().expect("tempdir");
    let meta = CommandMeta::random();
    let first = {
        let (store, ledger) = open(dir.path());
        set_up(&ledger).await;
        let queued = ledger
            .enqueue(meta, "test", invoice(1))
            .await
            .expect("queued");
        // Not awaited yet: the first is in flight.
        let resent = ledger
            .enqueue(meta, "test", invoice(1))
            .await
            .expect("resend queued");
        let changed = ledger.enqueue(meta, "test", invoice(2)).await;
        assert!(
            matches!(changed, Err(SubmitError::RequestIdReused(_))),
            "{:?}",
            changed.err()
        );
        let first = queued.await.expect("durable");
        let again = resent.await.expect("the first's outcome");
        assert!(!first.duplicate && again.duplicate);
        assert_eq!(
            store::AppendOutcome {
                duplicate: false,
                ..again
            },
            first
        );
        assert!(store.poisoned().is_none(), "the store saw one request");
        assert_eq!(store.head().sequence, first.last_sequence);
        first
    };
    let (store, ledger) = open(dir.path());
    let head = store.head();
    let again = ledger
        .submit(meta, "test", invoice(1))
        .await
        .expect("answered from the record");
    assert!(again.duplicate);
    assert_eq!(
        (again.first_sequence, again.hash),
        (first.first_sequence, first.hash)
    );
    let changed = ledger.submit(meta, "test", invoice(2)).await;
    assert!(
        matches!(changed, Err(SubmitError::RequestIdReused(_))),
        "{changed:?}"
    );
    assert_eq!(store.head(), head, "nothing written");
    assert!(store.poisoned().is_none());
    let requests = store.read_all(1, 100).expect("read");
    assert_eq!(
        requests
            .iter()
            .filter(|e| e.request_id == meta.request_id)
            .count(),
        1
    );
}

#[tokio::test]
async fn expected_version_mismatch_is_a_conflict_and_writes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, ledger) = open(dir.path());
    set_up(&ledger).await;
    let head = store.head();
    let stale = CommandMeta {
        expected_version: Some(0),
        ..CommandMeta::random()
    };
    let refused = ledger.submit(stale, "test", invoice(1)).await;
    assert!(
        matches!(
            refused,
            Err(SubmitError::WrongExpectedVersion {
                expected: 0,
                actual: 1,
                ..
            })
        ),
        "{refused:?}"
    );
    assert_eq!(store.head(), head);
    let current = CommandMeta {
        expected_version: Some(1),
        ..CommandMeta::random()
    };
    let accepted = ledger
        .submit(current, "test", invoice(1))
        .await
        .expect("accepted at version 1");
    assert_eq!(accepted.first_version, 2);
}

#[tokio::test]
async fn the_state_is_rebuilt_from_the_log_on_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let (_store, ledger) = open(dir.path());
        set_up(&ledger).await;
        ledger
            .submit(CommandMeta::random(), "test", invoice(7))
            .await
            .expect("accepted");
    }
    let (_store, ledger) = open(dir.path());
    // The invoice exists after the restart, so raising it again is refused by the rules.
    let again = ledger
        .submit(CommandMeta::random(), "test", invoice(7))
        .await;
    assert!(
        matches!(
            again,
            Err(SubmitError::Domain(
                domain::DomainError::AlreadyExists { .. }
            ))
        ),
        "{again:?}"
    );
}

#[tokio::test]
async fn a_ledger_serves_only_its_configured_system() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let (store, ledger) = open(dir.path());
        let other = Command::System(SystemCommand::Establish {
            system: SystemId::new("other").expect("id"),
            name: text("Another ICS"),
            first_year: year(),
        });
        let refused = ledger.submit(CommandMeta::random(), "test", other).await;
        assert!(
            matches!(
                &refused,
                Err(SubmitError::Domain(domain::DomainError::Invalid { field, .. })) if field == "system"
            ),
            "{refused:?}"
        );
        assert_eq!(store.head().sequence, 0, "a refusal writes nothing");
        set_up(&ledger).await;
        store.flush().expect("flush");
    }
    // The log is kav's: opening it as another system's ledger is refused.
    let store = EventStore::open(StoreConfig::new(dir.path())).expect("store opens");
    let wrong = Ledger::recover(store, SystemId::new("other").expect("id"));
    assert!(
        matches!(
            wrong,
            Err(ledgerd::ledger::RecoverError::WrongSystem { .. })
        ),
        "a log of kav opened as 'other' must be refused"
    );
}

fn file_return(as_of_sequence: u64) -> Command {
    Command::System(SystemCommand::FileReturn(domain::system::FiledReturn {
        filer: domain::system::Filer::Member(member("KCHT")),
        report: domain::position::ReportKind::Position,
        period: Period::new(year(), Month::new(1).expect("month")),
        as_of_sequence,
        fingerprint: [9; 32],
    }))
}

fn refused_as_of(result: &Result<store::AppendOutcome, SubmitError>) -> bool {
    matches!(
        result,
        Err(SubmitError::Domain(domain::DomainError::Invalid { field, .. })) if field == "as_of_sequence"
    )
}

/// A return names the sequence its report was taken at: the log must have it. Events queued
/// ahead of it in the same group commit count (a bulk load may file a return at a sequence it
/// recorded a moment before); one beyond the head is refused naming the field, and after a
/// restart the head is the recovered one.
#[tokio::test]
async fn a_filed_return_names_a_sequence_the_log_has() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let (store, ledger) = open(dir.path());
        set_up(&ledger).await;
        let head = store.head().sequence;
        assert_eq!(head, 4);
        let beyond = ledger
            .submit(CommandMeta::random(), "test", file_return(head + 1))
            .await;
        assert!(refused_as_of(&beyond), "{beyond:?}");
        assert_eq!(store.head().sequence, head, "a refusal writes nothing");

        // Queued, not yet awaited: its sequence (5) is the head the next command sees.
        let queued = ledger
            .enqueue(CommandMeta::random(), "test", invoice(1))
            .await
            .expect("queued");
        let filed = ledger
            .enqueue(CommandMeta::random(), "test", file_return(head + 1))
            .await
            .expect("the queued invoice is in the log before it");
        assert_eq!(queued.await.expect("durable").last_sequence, head + 1);
        assert_eq!(filed.await.expect("durable").last_sequence, head + 2);
        let zero = ledger
            .submit(CommandMeta::random(), "test", file_return(0))
            .await;
        assert!(refused_as_of(&zero), "{zero:?}");
    }
    let (store, ledger) = open(dir.path());
    let head = store.head().sequence;
    assert_eq!(head, 6);
    let beyond = ledger
        .submit(CommandMeta::random(), "test", file_return(head + 1))
        .await;
    assert!(refused_as_of(&beyond), "{beyond:?}");
    ledger
        .submit(CommandMeta::random(), "test", file_return(head))
        .await
        .expect("at the head");
}

/// A log holding an event the rules refuse (here an invoice number raised twice, as an older
/// version with other rules might have recorded it) recovers all the same: the fold stops at
/// that event, every event is still counted, and every command is refused naming it — a
/// resend of a recorded one too — and writes nothing.
#[tokio::test]
async fn a_log_the_rules_cannot_apply_recovers_stuck_and_refuses_every_command() {
    let dir = tempfile::tempdir().expect("tempdir");
    let recorded = CommandMeta::random();
    {
        let (store, ledger) = open(dir.path());
        set_up(&ledger).await;
        ledger
            .submit(recorded, "test", invoice(1))
            .await
            .expect("accepted");
        assert!(ledger.stuck().is_none());
        let again = |n: &str| {
            ledgerd::ledger::new_event(&domain::Event::Contract {
                contract: Code::new("C1").expect("code"),
                event: domain::ContractEvent::InvoiceRaised {
                    invoice: Code::new(n).expect("code"),
                    period: Period::new(year(), Month::new(2).expect("month")),
                    amount: Pence::new(100),
                    corrects: None,
                },
            })
        };
        store
            .append(store::AppendRequest {
                request_id: [7; 16],
                command_hash: [0; 32],
                stream: "contract/C1".to_string(),
                stream_version: 2,
                actor: "older-version".to_string(),
                correlation_id: [7; 16],
                events: vec![again("INV-1"), again("INV-NEXT")],
            })
            .await
            .expect("the store records what it is given");
    }
    let (store, ledger) = open(dir.path());
    let head = store.head();
    assert_eq!(head.sequence, 7);
    let stuck = ledger.stuck().expect("stuck");
    assert_eq!(stuck.sequence, 6);
    assert!(
        stuck.reason.contains("invoice INV-1 already exists"),
        "{}",
        stuck.reason
    );
    let counted =
        ledger.counts().get(domain::Family::System) + ledger.counts().get(domain::Family::Contract);
    assert_eq!(counted, 7, "every event counted, folded or not");

    for (meta, command) in [
        (CommandMeta::random(), invoice(2)),
        (recorded, invoice(1)),
        (CommandMeta::random(), setup().remove(0)),
    ] {
        let refused = ledger.submit(meta, "test", command).await;
        match refused {
            Err(SubmitError::Stuck(ref at)) => assert_eq!(at, stuck),
            other => panic!("{other:?}"),
        }
        let message = refused.expect_err("refused").to_string();
        assert!(
            message.contains("event 6 of its log") && message.contains("already exists"),
            "{message}"
        );
    }
    assert_eq!(store.head(), head, "nothing written");
    let status = ledgerd::service::status_from_submit(&SubmitError::Stuck(stuck.clone()));
    assert_eq!(status.code(), tonic::Code::FailedPrecondition);
    store.verify_chain().expect("the log verifies");
}
