//! [`domain::Event`] ↔ `pb::Event`: the write side publishes events as protobuf (NATS payloads,
//! `ReadStream`/`ReadAll`), and the read side decodes them back into domain events to fold.
//!
//! Reading checks only that an event fits the domain's types (codes, periods, known enum
//! values); the rules were applied when the event was recorded, and are not re-applied. Field
//! paths in errors start with the event's oneof field (`invoice_raised.period.month`).

use domain::budget::BudgetEvent;
use domain::contract::ContractEvent;
use domain::fund::FundEvent;
use domain::system::{FiledReturn, MonthlyReturn, SystemEvent};
use domain::{DomainError, Event};

use crate::pb;
use crate::pb::event::Event as E;
use crate::values::{self as v, Check, invalid, path};

/// `<family>.<name>`, e.g. `contract.invoice_raised`, `funding.tranche_paid`: the
/// `RecordedEvent.event_type` and the tail of the NATS subject (with `.` between the two).
pub fn event_type(event: &Event) -> String {
    format!("{}.{}", event.family().name(), event.name())
}

/// The proto form of a domain event. Cannot fail: every domain value has a proto form.
pub fn event_to_proto(event: &Event) -> pb::Event {
    let event = match event {
        Event::System(e) => system_to_proto(e),
        Event::Budget { budget, event } => budget_to_proto(budget.to_string(), event),
        Event::Fund { fund, event } => fund_to_proto(fund.to_string(), event),
        Event::Contract { contract, event } => contract_to_proto(contract.to_string(), event),
    };
    pb::Event { event: Some(event) }
}

/// The domain event a proto event holds, or what about it does not fit the domain's types.
pub fn event_from_proto(event: pb::Event) -> Result<Event, DomainError> {
    let Some(event) = event.event else {
        return Err(invalid("event", "is required: set one of the events"));
    };
    match event {
        E::SystemEstablished(e) => {
            let at = |f: &str| path("system_established", f);
            Ok(Event::System(SystemEvent::Established {
                system: v::system_id(e.system, &at("system"))?,
                name: v::text(e.name, &at("name"), Check::ShapeOnly)?,
                first_year: v::year(e.first_year, &at("first_year"))?,
            }))
        }
        E::MemberAdmitted(e) => {
            let at = |f: &str| path("member_admitted", f);
            Ok(Event::System(SystemEvent::MemberAdmitted {
                member: v::member(e.member, &at("member"))?,
                name: v::text(e.name, &at("name"), Check::ShapeOnly)?,
                kind: v::member_kind(e.kind, &at("kind"))?,
                in_control_total: e.in_control_total,
            }))
        }
        E::PlanAgreed(e) => {
            let at = |f: &str| path("plan_agreed", f);
            Ok(Event::System(SystemEvent::PlanAgreed {
                member: v::member(e.member, &at("member"))?,
                year: v::year(e.year, &at("year"))?,
                income: v::pence(e.income_pence),
                expenditure: v::pence(e.expenditure_pence),
                income_by_month: v::pence_list(e.income_by_month_pence),
                expenditure_by_month: v::pence_list(e.expenditure_by_month_pence),
                revision: e.revision,
            }))
        }
        E::ReturnSubmitted(e) => {
            let at = |f: &str| path("return_submitted", f);
            Ok(Event::System(SystemEvent::ReturnSubmitted {
                monthly_return: MonthlyReturn {
                    member: v::member(e.member, &at("member"))?,
                    period: v::period(e.period, &at("period"))?,
                    income: v::pence(e.income_pence),
                    expenditure: v::pence(e.expenditure_pence),
                    balances: v::balances(e.balances, &at("balances"))?,
                },
                revision: e.revision,
            }))
        }
        E::MetricReported(e) => {
            let at = |f: &str| path("metric_reported", f);
            Ok(Event::System(SystemEvent::MetricReported {
                member: v::member(e.member, &at("member"))?,
                period: v::period(e.period, &at("period"))?,
                metric: v::metric(e.metric, &at("metric"))?,
                value: e.value,
            }))
        }
        E::PeriodClosed(e) => Ok(Event::System(SystemEvent::PeriodClosed {
            period: v::period(e.period, "period_closed.period")?,
        })),
        E::ReturnFiled(e) => {
            let at = |f: &str| path("return_filed", f);
            Ok(Event::System(SystemEvent::ReturnFiled(FiledReturn {
                filer: v::filer(e.member, &at("member"))?,
                report: v::report_spec(e.report, &at("report"))?,
                period: v::period(e.period, &at("period"))?,
                as_of_sequence: e.as_of_sequence,
                fingerprint: v::fingerprint(&e.fingerprint, &at("fingerprint"))?,
            })))
        }
        E::BudgetEstablished(e) => budget_event("budget_established", e.budget, |at| {
            Ok(BudgetEvent::Established {
                name: v::text(e.name, &at("name"), Check::ShapeOnly)?,
                host: v::member(e.host, &at("host"))?,
                year: v::year(e.year, &at("year"))?,
                partners: v::members(e.partners, &at("partners"))?,
                schemes: v::schemes(e.schemes, &at("schemes"), Check::ShapeOnly)?,
                overspend_shares: v::shares(
                    e.overspend_shares,
                    &at("overspend_shares"),
                    Check::ShapeOnly,
                )?,
                underspend_shares: v::shares(
                    e.underspend_shares,
                    &at("underspend_shares"),
                    Check::ShapeOnly,
                )?,
            })
        }),
        E::ContributionPledged(e) => budget_event("contribution_pledged", e.budget, |at| {
            Ok(BudgetEvent::Pledged {
                partner: v::member(e.partner, &at("partner"))?,
                amount: v::pence(e.amount_pence),
                ring_fenced_scheme: v::optional_code(
                    e.ring_fenced_scheme,
                    &at("ring_fenced_scheme"),
                )?,
            })
        }),
        E::ContributionPaid(e) => budget_event("contribution_paid", e.budget, |at| {
            Ok(BudgetEvent::ContributionPaid {
                partner: v::member(e.partner, &at("partner"))?,
                period: v::period(e.period, &at("period"))?,
                amount: v::pence(e.amount_pence),
            })
        }),
        E::SpendRecorded(e) => budget_event("spend_recorded", e.budget, |at| {
            Ok(BudgetEvent::SpendRecorded {
                scheme: v::code(e.scheme, &at("scheme"))?,
                period: v::period(e.period, &at("period"))?,
                amount: v::pence(e.amount_pence),
                corrects: v::optional_period(e.corrects, &at("corrects"))?,
            })
        }),
        E::BudgetVaried(e) => budget_event("budget_varied", e.budget, |at| {
            Ok(BudgetEvent::Varied {
                reason: v::text(e.reason, &at("reason"), Check::ShapeOnly)?,
                overspend_shares: v::share_list(
                    e.overspend_shares,
                    &at("overspend_shares"),
                    Check::ShapeOnly,
                )?,
                underspend_shares: v::share_list(
                    e.underspend_shares,
                    &at("underspend_shares"),
                    Check::ShapeOnly,
                )?,
                add_schemes: v::schemes(e.add_schemes, &at("add_schemes"), Check::ShapeOnly)?,
            })
        }),
        E::RiskShareSettled(e) => budget_event("risk_share_settled", e.budget, |at| {
            Ok(BudgetEvent::RiskShareSettled {
                period: v::period(e.period, &at("period"))?,
                revenue_pledged: v::pence(e.revenue_pledged_pence),
                revenue_spend: v::pence(e.revenue_spend_pence),
                variance: v::pence(e.variance_pence),
                shares: v::shares(e.shares, &at("shares"), Check::ShapeOnly)?,
                allocations: v::allocations(e.allocations, &at("allocations"))?,
            })
        }),
        E::BudgetClosed(e) => budget_event("budget_closed", e.budget, |at| {
            Ok(BudgetEvent::Closed {
                period: v::period(e.period, &at("period"))?,
            })
        }),
        E::FundAllocated(e) => fund_event("fund_allocated", e.fund, |at| {
            Ok(FundEvent::Allocated {
                name: v::text(e.name, &at("name"), Check::ShapeOnly)?,
                year: v::year(e.year, &at("year"))?,
                recipients: v::recipients(e.recipients, &at("recipients"))?,
                conditions: v::conditions(e.conditions, &at("conditions"), Check::ShapeOnly)?,
                total: v::pence(e.total_pence),
                tranches: v::pence_list(e.tranches_pence),
            })
        }),
        E::TrancheAssessed(e) => fund_event("tranche_assessed", e.fund, |at| {
            Ok(FundEvent::TrancheAssessed {
                quarter: v::quarter(e.quarter, &at("quarter"))?,
                period: v::period(e.period, &at("period"))?,
                tranche: v::pence(e.tranche_pence),
                outcomes: v::outcomes(e.outcomes, &at("outcomes"))?,
                earned: v::pence(e.earned_pence),
                forfeited: v::pence(e.forfeited_pence),
                earned_by_recipient: v::allocations(
                    e.earned_by_recipient,
                    &at("earned_by_recipient"),
                )?,
            })
        }),
        E::TranchePaid(e) => fund_event("tranche_paid", e.fund, |at| {
            Ok(FundEvent::TranchePaid {
                quarter: v::quarter(e.quarter, &at("quarter"))?,
                period: v::period(e.period, &at("period"))?,
                payments: v::allocations(e.payments, &at("payments"))?,
            })
        }),
        E::ClawedBack(e) => fund_event("clawed_back", e.fund, |at| {
            Ok(FundEvent::ClawedBack {
                quarter: v::quarter(e.quarter, &at("quarter"))?,
                member: v::member(e.member, &at("member"))?,
                period: v::period(e.period, &at("period"))?,
                amount: v::pence(e.amount_pence),
                reason: v::text(e.reason, &at("reason"), Check::ShapeOnly)?,
            })
        }),
        E::ContractAgreed(e) => contract_event("contract_agreed", e.contract, |at| {
            Ok(ContractEvent::Agreed {
                commissioner: v::member(e.commissioner, &at("commissioner"))?,
                provider: v::member(e.provider, &at("provider"))?,
                year: v::year(e.year, &at("year"))?,
                model: v::payment_model(e.model, &at("model"), Check::ShapeOnly)?,
                description: v::text(e.description, &at("description"), Check::ShapeOnly)?,
                annual_value: v::pence(e.annual_value_pence),
            })
        }),
        E::ContractVaried(e) => contract_event("contract_varied", e.contract, |at| {
            Ok(ContractEvent::Varied {
                period: v::period(e.period, &at("period"))?,
                reason: v::text(e.reason, &at("reason"), Check::ShapeOnly)?,
                model: v::payment_model(e.model, &at("model"), Check::ShapeOnly)?,
                annual_value_before: v::pence(e.annual_value_before_pence),
                annual_value_after: v::pence(e.annual_value_after_pence),
            })
        }),
        E::ActivityRecorded(e) => contract_event("activity_recorded", e.contract, |at| {
            Ok(ContractEvent::ActivityRecorded {
                period: v::period(e.period, &at("period"))?,
                for_period: v::period(e.for_period, &at("for_period"))?,
                units: e.units,
                previous_units: e.previous_units,
                planned_units: e.planned_units,
                value_change: v::pence(e.value_change_pence),
            })
        }),
        E::InvoiceRaised(e) => contract_event("invoice_raised", e.contract, |at| {
            Ok(ContractEvent::InvoiceRaised {
                invoice: v::code(e.invoice, &at("invoice"))?,
                period: v::period(e.period, &at("period"))?,
                amount: v::pence(e.amount_pence),
                corrects: v::optional_period(e.corrects, &at("corrects"))?,
            })
        }),
        E::PaymentRecorded(e) => contract_event("payment_recorded", e.contract, |at| {
            Ok(ContractEvent::PaymentRecorded {
                invoice: v::code(e.invoice, &at("invoice"))?,
                period: v::period(e.period, &at("period"))?,
                amount: v::pence(e.amount_pence),
            })
        }),
        E::DisputeRaised(e) => contract_event("dispute_raised", e.contract, |at| {
            Ok(ContractEvent::DisputeRaised {
                dispute: v::code(e.dispute, &at("dispute"))?,
                invoice: v::optional_code(e.invoice, &at("invoice"))?,
                period: v::period(e.period, &at("period"))?,
                amount: v::pence(e.amount_pence),
                reason: v::text(e.reason, &at("reason"), Check::ShapeOnly)?,
            })
        }),
        E::DisputeResolved(e) => contract_event("dispute_resolved", e.contract, |at| {
            Ok(ContractEvent::DisputeResolved {
                dispute: v::code(e.dispute, &at("dispute"))?,
                period: v::period(e.period, &at("period"))?,
                provider_keeps: v::pence(e.provider_keeps_pence),
                written_off: v::pence(e.written_off_pence),
                resolution: v::text(e.resolution, &at("resolution"), Check::ShapeOnly)?,
            })
        }),
        E::CquinReconciled(e) => contract_event("cquin_reconciled", e.contract, |at| {
            Ok(ContractEvent::CquinReconciled {
                period: v::period(e.period, &at("period"))?,
                achievement: v::bp(e.achievement_bp, &at("achievement_bp"), Check::ShapeOnly)?,
                value: v::pence(e.value_pence),
                earned: v::pence(e.earned_pence),
                deduction: v::pence(e.deduction_pence),
            })
        }),
        E::AdjustmentRecorded(e) => contract_event("adjustment_recorded", e.contract, |at| {
            Ok(ContractEvent::AdjustmentRecorded {
                period: v::period(e.period, &at("period"))?,
                amount: v::pence(e.amount_pence),
                reason: v::text(e.reason, &at("reason"), Check::ShapeOnly)?,
                corrects: v::optional_period(e.corrects, &at("corrects"))?,
            })
        }),
        E::ContractTerminated(e) => contract_event("contract_terminated", e.contract, |at| {
            Ok(ContractEvent::Terminated {
                period: v::period(e.period, &at("period"))?,
                reason: v::text(e.reason, &at("reason"), Check::ShapeOnly)?,
            })
        }),
    }
}

fn budget_event(
    oneof: &str,
    budget: String,
    event: impl FnOnce(&dyn Fn(&str) -> String) -> Result<BudgetEvent, DomainError>,
) -> Result<Event, DomainError> {
    let at = |f: &str| path(oneof, f);
    Ok(Event::Budget {
        budget: v::code(budget, &at("budget"))?,
        event: event(&at)?,
    })
}

fn fund_event(
    oneof: &str,
    fund: String,
    event: impl FnOnce(&dyn Fn(&str) -> String) -> Result<FundEvent, DomainError>,
) -> Result<Event, DomainError> {
    let at = |f: &str| path(oneof, f);
    Ok(Event::Fund {
        fund: v::code(fund, &at("fund"))?,
        event: event(&at)?,
    })
}

fn contract_event(
    oneof: &str,
    contract: String,
    event: impl FnOnce(&dyn Fn(&str) -> String) -> Result<ContractEvent, DomainError>,
) -> Result<Event, DomainError> {
    let at = |f: &str| path(oneof, f);
    Ok(Event::Contract {
        contract: v::code(contract, &at("contract"))?,
        event: event(&at)?,
    })
}

// ---- domain → proto ------------------------------------------------------------------------

fn system_to_proto(event: &SystemEvent) -> E {
    match event {
        SystemEvent::Established {
            system,
            name,
            first_year,
        } => E::SystemEstablished(pb::SystemEstablished {
            system: system.to_string(),
            name: name.to_string(),
            first_year: v::year_to_pb(*first_year),
        }),
        SystemEvent::MemberAdmitted {
            member,
            name,
            kind,
            in_control_total,
        } => E::MemberAdmitted(pb::MemberAdmitted {
            member: member.to_string(),
            name: name.to_string(),
            kind: v::member_kind_to_pb(*kind).into(),
            in_control_total: *in_control_total,
        }),
        SystemEvent::PlanAgreed {
            member,
            year,
            income,
            expenditure,
            income_by_month,
            expenditure_by_month,
            revision,
        } => E::PlanAgreed(pb::PlanAgreed {
            member: member.to_string(),
            year: v::year_to_pb(*year),
            income_pence: income.get(),
            expenditure_pence: expenditure.get(),
            income_by_month_pence: v::pence_list_to_pb(income_by_month),
            expenditure_by_month_pence: v::pence_list_to_pb(expenditure_by_month),
            revision: *revision,
        }),
        SystemEvent::ReturnSubmitted {
            monthly_return: r,
            revision,
        } => E::ReturnSubmitted(pb::ReturnSubmitted {
            member: r.member.to_string(),
            period: Some(v::period_to_pb(r.period)),
            income_pence: r.income.get(),
            expenditure_pence: r.expenditure.get(),
            balances: v::balances_to_pb(&r.balances),
            revision: *revision,
        }),
        SystemEvent::MetricReported {
            member,
            period,
            metric,
            value,
        } => E::MetricReported(pb::MetricReported {
            member: member.to_string(),
            period: Some(v::period_to_pb(*period)),
            metric: v::metric_to_pb(*metric).into(),
            value: *value,
        }),
        SystemEvent::PeriodClosed { period } => E::PeriodClosed(pb::PeriodClosed {
            period: Some(v::period_to_pb(*period)),
        }),
        SystemEvent::ReturnFiled(filed) => E::ReturnFiled(pb::ReturnFiled {
            member: v::filer_to_pb(&filed.filer),
            report: Some(v::report_spec_to_pb(filed.report)),
            period: Some(v::period_to_pb(filed.period)),
            as_of_sequence: filed.as_of_sequence,
            fingerprint: filed.fingerprint.to_vec(),
        }),
    }
}

fn budget_to_proto(budget: String, event: &BudgetEvent) -> E {
    match event {
        BudgetEvent::Established {
            name,
            host,
            year,
            partners,
            schemes,
            overspend_shares,
            underspend_shares,
        } => E::BudgetEstablished(pb::BudgetEstablished {
            budget,
            name: name.to_string(),
            host: host.to_string(),
            year: v::year_to_pb(*year),
            partners: partners.iter().map(ToString::to_string).collect(),
            schemes: v::schemes_to_pb(schemes),
            overspend_shares: v::shares_to_pb(overspend_shares),
            underspend_shares: v::shares_to_pb(underspend_shares),
        }),
        BudgetEvent::Pledged {
            partner,
            amount,
            ring_fenced_scheme,
        } => E::ContributionPledged(pb::ContributionPledged {
            budget,
            partner: partner.to_string(),
            amount_pence: amount.get(),
            ring_fenced_scheme: ring_fenced_scheme.as_ref().map(ToString::to_string),
        }),
        BudgetEvent::ContributionPaid {
            partner,
            period,
            amount,
        } => E::ContributionPaid(pb::ContributionPaid {
            budget,
            partner: partner.to_string(),
            period: Some(v::period_to_pb(*period)),
            amount_pence: amount.get(),
        }),
        BudgetEvent::SpendRecorded {
            scheme,
            period,
            amount,
            corrects,
        } => E::SpendRecorded(pb::SpendRecorded {
            budget,
            scheme: scheme.to_string(),
            period: Some(v::period_to_pb(*period)),
            amount_pence: amount.get(),
            corrects: corrects.map(v::period_to_pb),
        }),
        BudgetEvent::Varied {
            reason,
            overspend_shares,
            underspend_shares,
            add_schemes,
        } => E::BudgetVaried(pb::BudgetVaried {
            budget,
            reason: reason.to_string(),
            overspend_shares: v::share_list_to_pb(overspend_shares.as_deref()),
            underspend_shares: v::share_list_to_pb(underspend_shares.as_deref()),
            add_schemes: v::schemes_to_pb(add_schemes),
        }),
        BudgetEvent::RiskShareSettled {
            period,
            revenue_pledged,
            revenue_spend,
            variance,
            shares,
            allocations,
        } => E::RiskShareSettled(pb::RiskShareSettled {
            budget,
            period: Some(v::period_to_pb(*period)),
            revenue_pledged_pence: revenue_pledged.get(),
            revenue_spend_pence: revenue_spend.get(),
            variance_pence: variance.get(),
            shares: v::shares_to_pb(shares),
            allocations: v::allocations_to_pb(allocations),
        }),
        BudgetEvent::Closed { period } => E::BudgetClosed(pb::BudgetClosed {
            budget,
            period: Some(v::period_to_pb(*period)),
        }),
    }
}

fn fund_to_proto(fund: String, event: &FundEvent) -> E {
    match event {
        FundEvent::Allocated {
            name,
            year,
            recipients,
            conditions,
            total,
            tranches,
        } => E::FundAllocated(pb::FundAllocated {
            fund,
            name: name.to_string(),
            year: v::year_to_pb(*year),
            recipients: v::recipients_to_pb(recipients),
            conditions: v::conditions_to_pb(conditions),
            total_pence: total.get(),
            tranches_pence: v::pence_list_to_pb(tranches),
        }),
        FundEvent::TrancheAssessed {
            quarter,
            period,
            tranche,
            outcomes,
            earned,
            forfeited,
            earned_by_recipient,
        } => E::TrancheAssessed(pb::TrancheAssessed {
            fund,
            quarter: v::quarter_to_pb(*quarter),
            period: Some(v::period_to_pb(*period)),
            tranche_pence: tranche.get(),
            outcomes: v::outcomes_to_pb(outcomes),
            earned_pence: earned.get(),
            forfeited_pence: forfeited.get(),
            earned_by_recipient: v::allocations_to_pb(earned_by_recipient),
        }),
        FundEvent::TranchePaid {
            quarter,
            period,
            payments,
        } => E::TranchePaid(pb::TranchePaid {
            fund,
            quarter: v::quarter_to_pb(*quarter),
            period: Some(v::period_to_pb(*period)),
            payments: v::allocations_to_pb(payments),
        }),
        FundEvent::ClawedBack {
            quarter,
            member,
            period,
            amount,
            reason,
        } => E::ClawedBack(pb::ClawedBack {
            fund,
            quarter: v::quarter_to_pb(*quarter),
            member: member.to_string(),
            period: Some(v::period_to_pb(*period)),
            amount_pence: amount.get(),
            reason: reason.to_string(),
        }),
    }
}

fn contract_to_proto(contract: String, event: &ContractEvent) -> E {
    match event {
        ContractEvent::Agreed {
            commissioner,
            provider,
            year,
            model,
            description,
            annual_value,
        } => E::ContractAgreed(pb::ContractAgreed {
            contract,
            commissioner: commissioner.to_string(),
            provider: provider.to_string(),
            year: v::year_to_pb(*year),
            model: Some(v::payment_model_to_pb(model)),
            description: description.to_string(),
            annual_value_pence: annual_value.get(),
        }),
        ContractEvent::Varied {
            period,
            reason,
            model,
            annual_value_before,
            annual_value_after,
        } => E::ContractVaried(pb::ContractVaried {
            contract,
            period: Some(v::period_to_pb(*period)),
            reason: reason.to_string(),
            model: Some(v::payment_model_to_pb(model)),
            annual_value_before_pence: annual_value_before.get(),
            annual_value_after_pence: annual_value_after.get(),
        }),
        ContractEvent::ActivityRecorded {
            period,
            for_period,
            units,
            previous_units,
            planned_units,
            value_change,
        } => E::ActivityRecorded(pb::ActivityRecorded {
            contract,
            period: Some(v::period_to_pb(*period)),
            for_period: Some(v::period_to_pb(*for_period)),
            units: *units,
            previous_units: *previous_units,
            planned_units: *planned_units,
            value_change_pence: value_change.get(),
        }),
        ContractEvent::InvoiceRaised {
            invoice,
            period,
            amount,
            corrects,
        } => E::InvoiceRaised(pb::InvoiceRaised {
            contract,
            invoice: invoice.to_string(),
            period: Some(v::period_to_pb(*period)),
            amount_pence: amount.get(),
            corrects: corrects.map(v::period_to_pb),
        }),
        ContractEvent::PaymentRecorded {
            invoice,
            period,
            amount,
        } => E::PaymentRecorded(pb::PaymentRecorded {
            contract,
            invoice: invoice.to_string(),
            period: Some(v::period_to_pb(*period)),
            amount_pence: amount.get(),
        }),
        ContractEvent::DisputeRaised {
            dispute,
            invoice,
            period,
            amount,
            reason,
        } => E::DisputeRaised(pb::DisputeRaised {
            contract,
            dispute: dispute.to_string(),
            invoice: invoice.as_ref().map(ToString::to_string),
            period: Some(v::period_to_pb(*period)),
            amount_pence: amount.get(),
            reason: reason.to_string(),
        }),
        ContractEvent::DisputeResolved {
            dispute,
            period,
            provider_keeps,
            written_off,
            resolution,
        } => E::DisputeResolved(pb::DisputeResolved {
            contract,
            dispute: dispute.to_string(),
            period: Some(v::period_to_pb(*period)),
            provider_keeps_pence: provider_keeps.get(),
            written_off_pence: written_off.get(),
            resolution: resolution.to_string(),
        }),
        ContractEvent::CquinReconciled {
            period,
            achievement,
            value,
            earned,
            deduction,
        } => E::CquinReconciled(pb::CquinReconciled {
            contract,
            period: Some(v::period_to_pb(*period)),
            achievement_bp: achievement.get(),
            value_pence: value.get(),
            earned_pence: earned.get(),
            deduction_pence: deduction.get(),
        }),
        ContractEvent::AdjustmentRecorded {
            period,
            amount,
            reason,
            corrects,
        } => E::AdjustmentRecorded(pb::AdjustmentRecorded {
            contract,
            period: Some(v::period_to_pb(*period)),
            amount_pence: amount.get(),
            reason: reason.to_string(),
            corrects: corrects.map(v::period_to_pb),
        }),
        ContractEvent::Terminated { period, reason } => {
            E::ContractTerminated(pb::ContractTerminated {
                contract,
                period: Some(v::period_to_pb(*period)),
                reason: reason.to_string(),
            })
        }
    }
}
