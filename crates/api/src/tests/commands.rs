use std::collections::BTreeSet;

use domain::budget::BudgetCommand;
use domain::{Command, DomainError};
use prost::Message as _;

use super::fixtures;
use crate::pb::command::Command as C;
use crate::{
    CommandMeta, IntoCommand, command_from_proto, command_to_proto, pb, with_field_prefix,
};

const REQUEST_ID: [u8; 16] = [
    0x67, 0xe5, 0x50, 0x44, 0x10, 0xb1, 0x42, 0x6f, 0x92, 0x47, 0xbb, 0x68, 0x0e, 0x5f, 0xe0, 0xc8,
];
const REQUEST_ID_TEXT: &str = "67e55044-10b1-426f-9247-bb680e5fe0c8";

fn meta() -> CommandMeta {
    CommandMeta {
        request_id: REQUEST_ID,
        expected_version: Some(0),
        correlation_id: Some([7; 16]),
    }
}

fn meta_pb() -> Option<pb::CommandMeta> {
    Some(meta().to_proto())
}

/// The proto request of the first fixture command that `pick` accepts.
fn request<T>(pick: impl Fn(C) -> Option<T>) -> T {
    fixtures::commands()
        .iter()
        .filter_map(|c| command_to_proto(&meta(), c).command)
        .find_map(pick)
        .expect("a fixture command of that kind")
}

/// Asserts that the request is refused as invalid, naming `field`; returns the reason.
#[track_caller]
fn refused(request: impl IntoCommand, field: &str) -> String {
    match request.into_command() {
        Err(DomainError::Invalid { field: got, reason }) => {
            assert_eq!(got, field, "reason: {reason}");
            reason
        }
        other => panic!("expected Invalid naming {field}, got {other:?}"),
    }
}

fn pb_period(year: u32, month: u32) -> Option<pb::Period> {
    Some(pb::Period { year, month })
}

#[test]
fn every_command_round_trips_through_proto_and_the_wire() {
    let commands = fixtures::commands();
    let mut kinds = BTreeSet::new();
    for command in &commands {
        let proto = command_to_proto(&meta(), command);
        let kind = format!("{:?}", proto.command.as_ref().map(std::mem::discriminant));
        kinds.insert(kind);
        let bytes = proto.encode_to_vec();
        let decoded = pb::Command::decode(bytes.as_slice()).expect("decodes");
        assert_eq!(decoded, proto);
        let (got_meta, got) = command_from_proto(decoded).expect("converts back");
        assert_eq!(got_meta, meta());
        assert_eq!(&got, command);
    }
    assert_eq!(kinds.len(), 28, "every request message is covered");
}

#[test]
fn unary_requests_convert_on_their_own() {
    let invoice = request(|c| match c {
        C::RaiseInvoice(r) => Some(r),
        _ => None,
    });
    assert_eq!(invoice.contract, "C1");
    let (meta, command) = invoice.into_command().expect("valid");
    assert_eq!(meta.request_id, REQUEST_ID);
    assert_eq!(command.stream().as_str(), "contract/C1");
}

#[test]
fn meta_is_required_and_its_ids_are_uuids() {
    let admit = request(|c| match c {
        C::AdmitMember(r) => Some(r),
        _ => None,
    });
    let with_meta = |meta: pb::CommandMeta| pb::AdmitMemberRequest {
        meta: Some(meta),
        ..admit.clone()
    };
    let base = pb::CommandMeta {
        request_id: REQUEST_ID_TEXT.to_string(),
        expected_version: None,
        correlation_id: String::new(),
    };

    refused(
        pb::AdmitMemberRequest {
            meta: None,
            ..admit.clone()
        },
        "meta",
    );
    let reason = refused(
        with_meta(pb::CommandMeta {
            request_id: String::new(),
            ..base.clone()
        }),
        "meta.request_id",
    );
    assert!(reason.contains("required"), "{reason}");
    refused(
        with_meta(pb::CommandMeta {
            request_id: "not-a-uuid".to_string(),
            ..base.clone()
        }),
        "meta.request_id",
    );
    refused(
        with_meta(pb::CommandMeta {
            request_id: "00000000-0000-0000-0000-000000000000".to_string(),
            ..base.clone()
        }),
        "meta.request_id",
    );
    let reason = refused(
        with_meta(pb::CommandMeta {
            request_id: "x".repeat(10_000),
            ..base.clone()
        }),
        "meta.request_id",
    );
    assert!(reason.len() < 100, "long input is not echoed: {reason}");
    refused(
        with_meta(pb::CommandMeta {
            correlation_id: "67e55044-10b1-426f-9247".to_string(),
            ..base.clone()
        }),
        "meta.correlation_id",
    );

    // Simple (unhyphenated) and upper-case forms are accepted; no correlation id means none.
    let (meta, _) = with_meta(pb::CommandMeta {
        request_id: "67E5504410B1426F9247BB680E5FE0C8".to_string(),
        expected_version: Some(41),
        ..base
    })
    .into_command()
    .expect("valid");
    assert_eq!(meta.request_id, REQUEST_ID);
    assert_eq!(meta.expected_version, Some(41));
    assert_eq!(meta.correlation_id, None);
    assert_eq!(meta.correlation_or_request_id(), REQUEST_ID);
    assert_eq!(meta.to_proto().request_id, REQUEST_ID_TEXT);
}

#[test]
fn system_requests_name_the_bad_field() {
    let establish = request(|c| match c {
        C::EstablishSystem(r) => Some(r),
        _ => None,
    });
    refused(
        pb::EstablishSystemRequest {
            system: "Kent.Medway".to_string(),
            ..establish.clone()
        },
        "system",
    );
    let reason = refused(
        pb::EstablishSystemRequest {
            first_year: 1999,
            ..establish.clone()
        },
        "first_year",
    );
    assert!(reason.contains("1999"), "{reason}");
    refused(
        pb::EstablishSystemRequest {
            name: "   ".to_string(),
            ..establish
        },
        "name",
    );

    let admit = request(|c| match c {
        C::AdmitMember(r) => Some(r),
        _ => None,
    });
    refused(
        pb::AdmitMemberRequest {
            member: "khft".to_string(),
            ..admit.clone()
        },
        "member",
    );
    let reason = refused(
        pb::AdmitMemberRequest {
            kind: pb::MemberKind::Unspecified.into(),
            ..admit.clone()
        },
        "kind",
    );
    assert!(reason.contains("UNSPECIFIED"), "{reason}");
    let reason = refused(pb::AdmitMemberRequest { kind: 99, ..admit }, "kind");
    assert!(reason.contains("99"), "{reason}");

    let submit = request(|c| match c {
        C::SubmitReturn(r) => Some(r),
        _ => None,
    });
    let mut bad = submit.clone();
    bad.balances.push(pb::CounterpartyBalance {
        counterparty: "not an ODS code".to_string(),
        ..bad.balances[0].clone()
    });
    refused(bad, "balances[2].counterparty");
    refused(
        pb::SubmitReturnRequest {
            period: None,
            ..submit.clone()
        },
        "period",
    );
    let reason = refused(
        pb::SubmitReturnRequest {
            period: pb_period(2018, 13),
            ..submit.clone()
        },
        "period.month",
    );
    assert!(reason.contains("1..=12"), "{reason}");
    refused(
        pb::SubmitReturnRequest {
            period: pb_period(2018, 0),
            ..submit.clone()
        },
        "period.month",
    );
    refused(
        pb::SubmitReturnRequest {
            period: pb_period(3000, 1),
            ..submit
        },
        "period.year",
    );

    let metric = request(|c| match c {
        C::ReportMetric(r) => Some(r),
        _ => None,
    });
    refused(
        pb::ReportMetricRequest {
            metric: pb::Metric::Unspecified.into(),
            ..metric.clone()
        },
        "metric",
    );
    refused(
        pb::ReportMetricRequest {
            metric: 4,
            ..metric
        },
        "metric",
    );

    refused(
        pb::ClosePeriodRequest {
            meta: meta_pb(),
            period: None,
        },
        "period",
    );
}

#[test]
fn file_return_requests_name_the_bad_field() {
    let file = request(|c| match c {
        C::FileReturn(r) => Some(r),
        _ => None,
    });
    let with_spec = |spec: pb::ReportSpec| pb::FileReturnRequest {
        report: Some(spec),
        ..file.clone()
    };
    let spec = |kind: pb::ReportKind, scope: pb::ReportScope| pb::ReportSpec {
        kind: kind.into(),
        scope: scope.into(),
        receivables_payables_threshold_pence: None,
        income_expenditure_threshold_pence: None,
    };
    let none = pb::ReportScope::Unspecified;

    // The system itself files with no member; a member by its ODS code.
    let (_, system) = pb::FileReturnRequest {
        member: String::new(),
        ..file.clone()
    }
    .into_command()
    .expect("valid");
    assert!(matches!(
        system,
        Command::System(domain::SystemCommand::FileReturn(
            domain::system::FiledReturn {
                filer: domain::system::Filer::System,
                ..
            }
        ))
    ));
    refused(
        pb::FileReturnRequest {
            member: "khft".to_string(),
            ..file.clone()
        },
        "member",
    );
    for length in [0, 31, 33, 64] {
        let reason = refused(
            pb::FileReturnRequest {
                fingerprint: vec![1; length],
                ..file.clone()
            },
            "fingerprint",
        );
        assert!(reason.contains(&length.to_string()), "{reason}");
    }
    refused(
        pb::FileReturnRequest {
            period: None,
            ..file.clone()
        },
        "period",
    );
    refused(
        pb::FileReturnRequest {
            period: pb_period(2018, 13),
            ..file.clone()
        },
        "period.month",
    );
    refused(
        pb::FileReturnRequest {
            report: None,
            ..file.clone()
        },
        "report",
    );
    let reason = refused(
        with_spec(spec(pb::ReportKind::Unspecified, none)),
        "report.kind",
    );
    assert!(reason.contains("UNSPECIFIED"), "{reason}");
    refused(
        with_spec(pb::ReportSpec {
            kind: 99,
            ..spec(pb::ReportKind::Position, none)
        }),
        "report.kind",
    );
    refused(
        with_spec(spec(pb::ReportKind::Consolidation, none)),
        "report.scope",
    );
    refused(
        with_spec(spec(pb::ReportKind::AgreementOfBalances, none)),
        "report.scope",
    );
    refused(
        with_spec(spec(pb::ReportKind::Funds, pb::ReportScope::AllMembers)),
        "report.scope",
    );
    refused(
        with_spec(pb::ReportSpec {
            scope: 7,
            ..spec(pb::ReportKind::Consolidation, none)
        }),
        "report.scope",
    );
    refused(
        with_spec(pb::ReportSpec {
            income_expenditure_threshold_pence: Some(1),
            ..spec(pb::ReportKind::Position, none)
        }),
        "report.income_expenditure_threshold_pence",
    );
    // Absent thresholds are the defaults; a negative one is the domain's to refuse.
    let (_, aob) = with_spec(spec(
        pb::ReportKind::AgreementOfBalances,
        pb::ReportScope::System,
    ))
    .into_command()
    .expect("valid");
    let Command::System(domain::SystemCommand::FileReturn(filed)) = aob else {
        panic!("a filed return: {aob:?}");
    };
    assert_eq!(
        filed.report,
        domain::position::ReportKind::AgreementOfBalances(domain::position::AobOptions::default())
    );
    assert!(
        with_spec(pb::ReportSpec {
            receivables_payables_threshold_pence: Some(-1),
            ..spec(pb::ReportKind::AgreementOfBalances, pb::ReportScope::System)
        })
        .into_command()
        .is_ok()
    );
}

#[test]
fn budget_requests_name_the_bad_field() {
    let establish = request(|c| match c {
        C::EstablishBudget(r) => Some(r),
        _ => None,
    });
    refused(
        pb::EstablishBudgetRequest {
            budget: String::new(),
            ..establish.clone()
        },
        "budget",
    );
    let mut bad = establish.clone();
    bad.partners[1] = "K".to_string();
    refused(bad, "partners[1]");
    let mut bad = establish.clone();
    bad.schemes[1].scheme = "D F G".to_string();
    refused(bad, "schemes[1].scheme");
    let mut bad = establish.clone();
    bad.overspend_shares[1].share_bp = 10_001;
    let reason = refused(bad, "overspend_shares[1].share_bp");
    assert!(reason.contains("10001"), "{reason}");
    let mut bad = establish;
    bad.underspend_shares[0].member = String::new();
    refused(bad, "underspend_shares[0].member");

    let pledge = request(|c| match c {
        C::PledgeContribution(r) => Some(r),
        _ => None,
    });
    refused(
        pb::PledgeContributionRequest {
            ring_fenced_scheme: Some("no spaces".to_string()),
            ..pledge
        },
        "ring_fenced_scheme",
    );

    let spend = request(|c| match c {
        C::RecordSpend(r) => Some(r),
        _ => None,
    });
    refused(
        pb::RecordSpendRequest {
            corrects: pb_period(2018, 13),
            ..spend
        },
        "corrects.month",
    );

    let vary = request(|c| match c {
        C::VaryBudget(r) => Some(r),
        _ => None,
    });
    refused(
        pb::VaryBudgetRequest {
            underspend_shares: Some(pb::ShareList {
                shares: vec![pb::Share {
                    member: "kcc".to_string(),
                    share_bp: 10_000,
                }],
            }),
            ..vary.clone()
        },
        "underspend_shares.shares[0].member",
    );
    refused(
        pb::VaryBudgetRequest {
            reason: String::new(),
            ..vary
        },
        "reason",
    );
}

#[test]
fn share_lists_keep_absent_apart_from_empty() {
    let vary = |overspend: Option<pb::ShareList>| pb::VaryBudgetRequest {
        meta: meta_pb(),
        budget: "BCF".to_string(),
        reason: "Variation".to_string(),
        overspend_shares: overspend,
        underspend_shares: None,
        add_schemes: Vec::new(),
    };
    let overspend = |request: pb::VaryBudgetRequest| match request.into_command() {
        Ok((
            _,
            Command::Budget {
                command:
                    BudgetCommand::Vary {
                        overspend_shares, ..
                    },
                ..
            },
        )) => overspend_shares,
        other => panic!("expected a budget variation, got {other:?}"),
    };
    assert_eq!(overspend(vary(None)), None);
    assert_eq!(
        overspend(vary(Some(pb::ShareList { shares: Vec::new() }))),
        Some(Vec::new())
    );
}

#[test]
fn fund_requests_name_the_bad_field() {
    let allocate = request(|c| match c {
        C::AllocateFund(r) => Some(r),
        _ => None,
    });
    let mut bad = allocate.clone();
    bad.conditions[1].threshold_bp = None;
    let reason = refused(bad, "conditions[1].threshold_bp");
    assert!(reason.contains("required"), "{reason}");
    let mut bad = allocate.clone();
    bad.conditions[0].threshold_bp = Some(9_000);
    refused(bad, "conditions[0].threshold_bp");
    let mut bad = allocate.clone();
    bad.conditions[0].kind = pb::ConditionKind::Unspecified.into();
    refused(bad, "conditions[0].kind");
    let mut bad = allocate.clone();
    bad.conditions[1].threshold_bp = Some(10_001);
    refused(bad, "conditions[1].threshold_bp");
    let mut bad = allocate.clone();
    bad.conditions[0].weight_bp = 20_000;
    refused(bad, "conditions[0].weight_bp");
    let mut bad = allocate;
    bad.recipients[0].member = "?".to_string();
    refused(bad, "recipients[0].member");

    let assess = request(|c| match c {
        C::AssessTranche(r) => Some(r),
        _ => None,
    });
    refused(
        pb::AssessTrancheRequest {
            quarter: 5,
            ..assess.clone()
        },
        "quarter",
    );
    refused(
        pb::AssessTrancheRequest {
            quarter: 0,
            ..assess.clone()
        },
        "quarter",
    );
    let mut bad = assess.clone();
    bad.evidence[1].figures = None;
    refused(bad, "evidence[1].figures");
    let mut bad = assess.clone();
    bad.evidence[1].figures = Some(pb::Figures { figures: None });
    let reason = refused(bad, "evidence[1].figures");
    assert!(reason.contains("system_finance"), "{reason}");
    let mut bad = assess;
    bad.evidence[1].figures = Some(pb::Figures {
        figures: Some(pb::figures::Figures::AeFourHour(pb::figures::AeFourHour {
            performance_bp: 10_001,
        })),
    });
    refused(bad, "evidence[1].figures.ae_four_hour.performance_bp");

    let claw_back = request(|c| match c {
        C::ClawBack(r) => Some(r),
        _ => None,
    });
    refused(
        pb::ClawBackRequest {
            fund: "PSF 2018".to_string(),
            ..claw_back
        },
        "fund",
    );
}

#[test]
fn contract_requests_name_the_bad_field() {
    let agree = request(|c| match c {
        C::AgreeContract(r) => Some(r),
        _ => None,
    });
    refused(
        pb::AgreeContractRequest {
            model: None,
            ..agree.clone()
        },
        "model",
    );
    let reason = refused(
        pb::AgreeContractRequest {
            model: Some(pb::PaymentModel { model: None }),
            ..agree.clone()
        },
        "model",
    );
    assert!(reason.contains("aligned_payment"), "{reason}");
    refused(
        pb::AgreeContractRequest {
            model: Some(pb::PaymentModel {
                model: Some(pb::payment_model::Model::AlignedPayment(
                    pb::payment_model::AlignedPayment {
                        fixed_pence: 1,
                        planned_units: 1,
                        unit_price_pence: 1,
                        marginal_rate_bp: 10_001,
                    },
                )),
            }),
            ..agree.clone()
        },
        "model.aligned_payment.marginal_rate_bp",
    );
    refused(
        pb::AgreeContractRequest {
            model: Some(pb::PaymentModel {
                model: Some(pb::payment_model::Model::Capitation(
                    pb::payment_model::Capitation {
                        per_head_pence: 1,
                        population: 1,
                        gain_share_bp: 0,
                        loss_share_bp: u32::MAX,
                    },
                )),
            }),
            ..agree.clone()
        },
        "model.capitation.loss_share_bp",
    );
    refused(
        pb::AgreeContractRequest {
            model: Some(pb::PaymentModel {
                model: Some(pb::payment_model::Model::Cquin(pb::payment_model::Cquin {
                    base_value_pence: 1,
                    rate_bp: 10_001,
                })),
            }),
            ..agree.clone()
        },
        "model.cquin.rate_bp",
    );
    refused(
        pb::AgreeContractRequest {
            commissioner: String::new(),
            ..agree.clone()
        },
        "commissioner",
    );
    refused(
        pb::AgreeContractRequest {
            description: "line\nbreak".to_string(),
            ..agree
        },
        "description",
    );

    let dispute = request(|c| match c {
        C::RaiseDispute(r) => Some(r),
        _ => None,
    });
    refused(
        pb::RaiseDisputeRequest {
            invoice: Some(String::new()),
            ..dispute
        },
        "invoice",
    );

    let cquin = request(|c| match c {
        C::ReconcileCquin(r) => Some(r),
        _ => None,
    });
    refused(
        pb::ReconcileCquinRequest {
            achievement_bp: 10_001,
            ..cquin
        },
        "achievement_bp",
    );

    let activity = request(|c| match c {
        C::RecordActivity(r) => Some(r),
        _ => None,
    });
    refused(
        pb::RecordActivityRequest {
            corrects: pb_period(1999, 12),
            ..activity
        },
        "corrects.year",
    );
}

#[test]
fn an_empty_bulk_item_is_refused() {
    refused(pb::Command { command: None }, "command");
}

#[test]
fn validation_checks_meta_before_the_command() {
    // Both meta and member are bad: the client hears about meta first, every time.
    refused(
        pb::AdmitMemberRequest {
            meta: None,
            member: "bad".to_string(),
            ..Default::default()
        },
        "meta",
    );
}

#[test]
fn field_prefixes_place_an_error_in_a_bulk_load() {
    let error = DomainError::invalid("period.month", "month 13 is outside 1..=12");
    assert_eq!(
        with_field_prefix(error, "commands[41]"),
        DomainError::invalid("commands[41].period.month", "month 13 is outside 1..=12")
    );
    assert_eq!(
        with_field_prefix(DomainError::overflow("amount_pence"), "commands[0]"),
        DomainError::overflow("commands[0].amount_pence")
    );
    let not_found = DomainError::NotFound {
        what: "contract",
        id: "C9".to_string(),
    };
    assert_eq!(
        with_field_prefix(not_found.clone(), "commands[1]"),
        not_found
    );
}
