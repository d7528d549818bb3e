use std::collections::BTreeSet;

use domain::{DomainError, Family};
use prost::Message as _;

use super::fixtures;
use crate::{event_from_proto, event_to_proto, event_type, pb};

#[test]
fn every_event_round_trips_through_proto_and_the_wire() {
    let events = fixtures::events();
    let mut types = BTreeSet::new();
    for event in &events {
        types.insert(event_type(event));
        let bytes = event_to_proto(event).encode_to_vec();
        let decoded = pb::Event::decode(bytes.as_slice()).expect("decodes");
        assert_eq!(event_from_proto(decoded).as_ref(), Ok(event));
    }
    // 7 system + 7 budget + 4 funding + 10 contract event kinds.
    assert_eq!(types.len(), 28, "every event variant is covered: {types:?}");
    for family in Family::ALL {
        assert!(
            types.iter().any(|t| t.starts_with(&format!("{family}."))),
            "{family}"
        );
    }
}

#[test]
fn event_types_are_family_dot_name() {
    let types: BTreeSet<String> = fixtures::events().iter().map(event_type).collect();
    for expected in [
        "system.established",
        "budget.established",
        "budget.pledged",
        "funding.tranche_paid",
        "contract.invoice_raised",
        "contract.agreed",
        "system.return_filed",
    ] {
        assert!(types.contains(expected), "{expected} in {types:?}");
    }
}

#[test]
fn each_event_kind_has_its_own_oneof_field() {
    let fields: BTreeSet<String> = fixtures::events()
        .iter()
        .map(|e| {
            let proto = event_to_proto(e);
            format!("{:?}", proto.event.as_ref().map(std::mem::discriminant))
        })
        .collect();
    assert_eq!(fields.len(), 28);
}

#[test]
fn a_malformed_event_names_the_field() {
    let refused = |event: pb::Event| match event_from_proto(event) {
        Err(DomainError::Invalid { field, .. }) => field,
        other => panic!("expected Invalid, got {other:?}"),
    };
    assert_eq!(refused(pb::Event { event: None }), "event");

    let invoice = |period| pb::Event {
        event: Some(pb::event::Event::InvoiceRaised(pb::InvoiceRaised {
            contract: "C1".to_string(),
            invoice: "INV-1".to_string(),
            period,
            amount_pence: 100,
            corrects: None,
        })),
    };
    assert_eq!(
        refused(invoice(Some(pb::Period {
            year: 2018,
            month: 13
        }))),
        "invoice_raised.period.month"
    );
    assert_eq!(refused(invoice(None)), "invoice_raised.period");

    let admitted = pb::Event {
        event: Some(pb::event::Event::MemberAdmitted(pb::MemberAdmitted {
            member: "KCC".to_string(),
            name: "Kent County Council".to_string(),
            kind: 42,
            in_control_total: false,
        })),
    };
    assert_eq!(refused(admitted), "member_admitted.kind");

    let allocated = pb::Event {
        event: Some(pb::event::Event::FundAllocated(pb::FundAllocated {
            fund: "bad code!".to_string(),
            ..Default::default()
        })),
    };
    assert_eq!(refused(allocated), "fund_allocated.fund");

    let filed = |fingerprint: Vec<u8>, kind: i32| pb::Event {
        event: Some(pb::event::Event::ReturnFiled(pb::ReturnFiled {
            member: "KHFT".to_string(),
            report: Some(pb::ReportSpec {
                kind,
                ..Default::default()
            }),
            period: Some(pb::Period {
                year: 2018,
                month: 6,
            }),
            as_of_sequence: 9,
            fingerprint,
        })),
    };
    let position = pb::ReportKind::Position.into();
    assert!(event_from_proto(filed(vec![0; 32], position)).is_ok());
    assert_eq!(
        refused(filed(vec![0; 31], position)),
        "return_filed.fingerprint"
    );
    assert_eq!(refused(filed(vec![0; 32], 0)), "return_filed.report.kind");
}

#[test]
fn events_are_read_without_re_applying_command_limits() {
    // A recorded figure above 100% (here an A&E performance) is read as recorded: the rules
    // ran when the event was written, and a reader must never reject the log.
    let assessed = pb::Event {
        event: Some(pb::event::Event::TrancheAssessed(pb::TrancheAssessed {
            fund: "PSF".to_string(),
            quarter: 1,
            period: Some(pb::Period {
                year: 2018,
                month: 3,
            }),
            outcomes: vec![pb::ConditionOutcome {
                condition: "AE".to_string(),
                kind: pb::ConditionKind::AeFourHour.into(),
                weight_bp: 10_000,
                threshold_bp: Some(9_000),
                figures: Some(pb::Figures {
                    figures: Some(pb::figures::Figures::AeFourHour(pb::figures::AeFourHour {
                        performance_bp: 10_500,
                    })),
                }),
                ..Default::default()
            }],
            ..Default::default()
        })),
    };
    assert!(event_from_proto(assessed).is_ok());
}

#[test]
fn periods_convert_on_their_own() {
    let period = super::fixtures::period("2018/19-M12");
    let proto = crate::period_to_proto(period);
    assert_eq!((proto.year, proto.month), (2018, 12));
    assert_eq!(
        crate::period_from_proto(Some(proto), "effective_period"),
        Ok(period)
    );
    assert_eq!(
        crate::period_from_proto(None, "effective_period"),
        Err(DomainError::invalid("effective_period", "is required"))
    );
}
