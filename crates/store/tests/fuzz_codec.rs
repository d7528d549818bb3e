//! Property-driven fuzzing of the on-disk decoder: whatever bytes a disk, an attacker or a
//! bug puts in an event record, decoding returns an error or an event — it never panics and
//! never allocates past the body limit. Bounded (proptest's case count), so it runs in CI.

use domain::Event;
use proptest::prelude::*;
use store::codec;
use store::{EventStore, NewEvent, RawEvent, StoreConfig};

/// Real stored bodies of domain events, to mutate.
fn stored_bodies() -> Vec<RawEvent> {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = EventStore::<Event>::open(StoreConfig::new(dir.path())).expect("open");
    let year = domain::FinancialYear::new(2018).expect("year");
    let events = [
        Event::System(domain::SystemEvent::Established {
            system: domain::SystemId::new("kav").expect("id"),
            name: domain::Text::new("Kingsmere").expect("text"),
            first_year: year,
        }),
        Event::Contract {
            contract: domain::Code::new("C1").expect("code"),
            event: domain::ContractEvent::InvoiceRaised {
                invoice: domain::Code::new("INV-1").expect("code"),
                period: domain::Period::new(year, domain::Month::new(3).expect("month")),
                amount: domain::Pence::new(123_456),
                corrects: None,
            },
        },
    ];
    for (n, event) in events.into_iter().enumerate() {
        let request = store::AppendRequest {
            request_id: [n as u8 + 1; 16],
            command_hash: [0; 32],
            stream: "s".to_string(),
            stream_version: n as u64,
            actor: "fuzz".to_string(),
            correlation_id: [0; 16],
            events: vec![NewEvent {
                event_id: [n as u8 + 1; 16],
                event_type: "x.y".to_string(),
                effective_period: None,
                payload: event,
            }],
        };
        store
            .enqueue(request)
            .expect("enqueue")
            .wait()
            .expect("append");
    }
    store.read_raw(1, 10).expect("read")
}

fn decode(sequence: u64, body: Vec<u8>) {
    let raw = RawEvent {
        sequence,
        hash: codec::chain_hash(&[0; 32], &body),
        body,
    };
    // Either outcome is fine; a panic fails the test.
    let _ = codec::decode_raw::<Event>(&raw);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn arbitrary_bytes_never_panic(sequence: u64, body in proptest::collection::vec(any::<u8>(), 0..512)) {
        decode(sequence, body);
    }

    #[test]
    fn mutated_real_records_never_panic(
        which in 0usize..2,
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..8),
    ) {
        let real = &BODIES.with(|b| b.clone())[which];
        let mut body = real.body.clone();
        for (at, byte, kind) in edits {
            match kind {
                0 if !body.is_empty() => { let i = at.index(body.len()); body[i] = byte; }
                1 => { let i = at.index(body.len() + 1); body.insert(i, byte); }
                _ if !body.is_empty() => { let i = at.index(body.len()); body.truncate(i); }
                _ => {}
            }
        }
        decode(real.sequence, body);
    }
}

thread_local! {
    static BODIES: Vec<RawEvent> = stored_bodies();
}

#[test]
fn the_real_records_decode() {
    for raw in stored_bodies() {
        codec::decode_raw::<Event>(&raw).expect("a stored event decodes");
    }
}
