//! Conversions of the value types that commands and events share (periods, codes, money,
//! shares, payment models, conditions), in both directions.
//!
//! Reading a proto value checks everything the domain's types enforce (an ODS code's
//! characters, a month in 1..=12, a known enum value) and names the offending field by its
//! path in the request or event, so the error a client sees points at what to fix. Writing a
//! domain value to proto cannot fail.

use domain::budget::{Allocation, Scheme, Share};
use domain::contract::PaymentModel;
use domain::fund::{Condition, ConditionKind, ConditionOutcome, Evidence, Figures, Recipient};
use domain::position::{AobOptions, AobScope, AobThresholds, ConsolidationScope, ReportKind};
use domain::system::{CounterpartyBalance, Filer, Metric};
use domain::{
    BasisPoints, Code, DomainError, FinancialYear, MemberCode, MemberKind, Month, Pence, Period,
    Quarter, SystemId, Text,
};

use crate::pb;

/// How much a reader checks beyond what the domain types themselves enforce.
///
/// Commands come from clients, so their rates and shares are checked against 0..=100% here,
/// before the domain sees them. Events were accepted by the domain's rules when they were
/// recorded; a reader of the log takes their figures as they are and checks only that they
/// fit the types, so a rule changing later never makes old events unreadable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Check {
    Ranges,
    ShapeOnly,
}

pub(crate) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> DomainError {
    DomainError::invalid(field, reason)
}

/// `prefix.name`, or `name` when there is no prefix.
pub(crate) fn path(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

/// `prefix[index]`.
pub(crate) fn item(prefix: &str, index: usize) -> String {
    format!("{prefix}[{index}]")
}

pub(crate) fn required<T>(value: Option<T>, field: &str) -> Result<T, DomainError> {
    value.ok_or_else(|| invalid(field, "is required"))
}

// ---- identifiers and text ------------------------------------------------------------------

pub(crate) fn system_id(text: String, field: &str) -> Result<SystemId, DomainError> {
    SystemId::new(text).map_err(|e| invalid(field, e.to_string()))
}

pub(crate) fn member(text: String, field: &str) -> Result<MemberCode, DomainError> {
    MemberCode::parse(text).map_err(|e| invalid(field, e.to_string()))
}

pub(crate) fn members(texts: Vec<String>, field: &str) -> Result<Vec<MemberCode>, DomainError> {
    texts
        .into_iter()
        .enumerate()
        .map(|(i, text)| member(text, &item(field, i)))
        .collect()
}

pub(crate) fn code(text: String, field: &str) -> Result<Code, DomainError> {
    Code::new(text).map_err(|e| invalid(field, e.to_string()))
}

pub(crate) fn optional_code(
    text: Option<String>,
    field: &str,
) -> Result<Option<Code>, DomainError> {
    text.map(|text| code(text, field)).transpose()
}

/// Free text. A command's ([`Check::Ranges`]) may not hold Unicode format or bidirectional
/// control characters ([`Text::from_input`]); an event's is read as it was recorded.
pub(crate) fn text(text: String, field: &str, check: Check) -> Result<Text, DomainError> {
    match check {
        Check::Ranges => Text::from_input(text),
        Check::ShapeOnly => Text::new(text),
    }
    .map_err(|e| invalid(field, e.to_string()))
}

// ---- periods -------------------------------------------------------------------------------

pub(crate) fn year(year: u32, field: &str) -> Result<FinancialYear, DomainError> {
    FinancialYear::new(year).map_err(|e| invalid(field, e.to_string()))
}

pub(crate) fn quarter(quarter: u32, field: &str) -> Result<Quarter, DomainError> {
    Quarter::new(quarter).map_err(|e| invalid(field, e.to_string()))
}

/// A required period.
pub(crate) fn period(period: Option<pb::Period>, field: &str) -> Result<Period, DomainError> {
    let pb::Period { year: y, month: m } = required(period, field)?;
    let financial_year = year(y, &path(field, "year"))?;
    let month = Month::new(m).map_err(|e| invalid(path(field, "month"), e.to_string()))?;
    Ok(Period::new(financial_year, month))
}

/// An optional period (`corrects`): absent is `None`, present must be valid.
pub(crate) fn optional_period(
    period: Option<pb::Period>,
    field: &str,
) -> Result<Option<Period>, DomainError> {
    match period {
        None => Ok(None),
        Some(p) => self::period(Some(p), field).map(Some),
    }
}

pub(crate) fn period_to_pb(period: Period) -> pb::Period {
    pb::Period {
        year: u32::from(period.year.start_year()),
        month: u32::from(period.month.number()),
    }
}

pub(crate) fn year_to_pb(year: FinancialYear) -> u32 {
    u32::from(year.start_year())
}

pub(crate) fn quarter_to_pb(quarter: Quarter) -> u32 {
    u32::from(quarter.number())
}

// ---- money and rates -----------------------------------------------------------------------

pub(crate) fn pence(amount: i64) -> Pence {
    Pence::new(amount)
}

/// Basis points; with [`Check::Ranges`], at most 10000 (100.00%).
pub(crate) fn bp(value: u32, field: &str, check: Check) -> Result<BasisPoints, DomainError> {
    let bp = BasisPoints::new(value);
    if check == Check::Ranges && !bp.is_share() {
        return Err(invalid(
            field,
            format!("{value} bp is more than 10000 bp (100.00%)"),
        ));
    }
    Ok(bp)
}

pub(crate) fn pence_list(amounts: Vec<i64>) -> Vec<Pence> {
    amounts.into_iter().map(Pence::new).collect()
}

pub(crate) fn pence_list_to_pb(amounts: &[Pence]) -> Vec<i64> {
    amounts.iter().map(|p| p.get()).collect()
}

// ---- enums ---------------------------------------------------------------------------------

pub(crate) fn member_kind(value: i32, field: &str) -> Result<MemberKind, DomainError> {
    match pb::MemberKind::try_from(value) {
        Ok(pb::MemberKind::Unspecified) => Err(invalid(
            field,
            "is required (MEMBER_KIND_UNSPECIFIED is not a kind)",
        )),
        Ok(pb::MemberKind::Commissioner) => Ok(MemberKind::Commissioner),
        Ok(pb::MemberKind::AcuteTrust) => Ok(MemberKind::AcuteTrust),
        Ok(pb::MemberKind::CommunityTrust) => Ok(MemberKind::CommunityTrust),
        Ok(pb::MemberKind::MentalHealthTrust) => Ok(MemberKind::MentalHealthTrust),
        Ok(pb::MemberKind::PrimaryCareNetwork) => Ok(MemberKind::PrimaryCareNetwork),
        Ok(pb::MemberKind::LocalAuthority) => Ok(MemberKind::LocalAuthority),
        Err(_) => Err(invalid(field, format!("{value} is not a MemberKind"))),
    }
}

pub(crate) fn member_kind_to_pb(kind: MemberKind) -> pb::MemberKind {
    match kind {
        MemberKind::Commissioner => pb::MemberKind::Commissioner,
        MemberKind::AcuteTrust => pb::MemberKind::AcuteTrust,
        MemberKind::CommunityTrust => pb::MemberKind::CommunityTrust,
        MemberKind::MentalHealthTrust => pb::MemberKind::MentalHealthTrust,
        MemberKind::PrimaryCareNetwork => pb::MemberKind::PrimaryCareNetwork,
        MemberKind::LocalAuthority => pb::MemberKind::LocalAuthority,
    }
}

pub(crate) fn metric(value: i32, field: &str) -> Result<Metric, DomainError> {
    match pb::Metric::try_from(value) {
        Ok(pb::Metric::Unspecified) => Err(invalid(
            field,
            "is required (METRIC_UNSPECIFIED is not a metric)",
        )),
        Ok(pb::Metric::EmergencyAdmissions) => Ok(Metric::EmergencyAdmissions),
        Ok(pb::Metric::EmergencyBedDays) => Ok(Metric::EmergencyBedDays),
        Ok(pb::Metric::AeFourHour) => Ok(Metric::AeFourHour),
        Err(_) => Err(invalid(field, format!("{value} is not a Metric"))),
    }
}

pub(crate) fn metric_to_pb(metric: Metric) -> pb::Metric {
    match metric {
        Metric::EmergencyAdmissions => pb::Metric::EmergencyAdmissions,
        Metric::EmergencyBedDays => pb::Metric::EmergencyBedDays,
        Metric::AeFourHour => pb::Metric::AeFourHour,
    }
}

/// A condition kind from its proto enum and the optional threshold beside it (`prefix` is the
/// message holding `kind` and `threshold_bp`).
pub(crate) fn condition_kind(
    kind: i32,
    threshold_bp: Option<u32>,
    prefix: &str,
    check: Check,
) -> Result<ConditionKind, DomainError> {
    let kind_field = path(prefix, "kind");
    let threshold_field = path(prefix, "threshold_bp");
    match pb::ConditionKind::try_from(kind) {
        Ok(pb::ConditionKind::Unspecified) => Err(invalid(
            kind_field,
            "is required (CONDITION_KIND_UNSPECIFIED is not a kind)",
        )),
        Ok(pb::ConditionKind::SystemFinance) => match threshold_bp {
            None => Ok(ConditionKind::SystemFinance),
            Some(_) => Err(invalid(
                threshold_field,
                "only an A&E four-hour condition has a threshold",
            )),
        },
        Ok(pb::ConditionKind::AeFourHour) => {
            let threshold = required(threshold_bp, &threshold_field)?;
            Ok(ConditionKind::AeFourHour {
                threshold: bp(threshold, &threshold_field, check)?,
            })
        }
        Err(_) => Err(invalid(
            kind_field,
            format!("{kind} is not a ConditionKind"),
        )),
    }
}

/// The proto enum and optional threshold for a condition kind.
pub(crate) fn condition_kind_to_pb(kind: ConditionKind) -> (pb::ConditionKind, Option<u32>) {
    match kind {
        ConditionKind::SystemFinance => (pb::ConditionKind::SystemFinance, None),
        ConditionKind::AeFourHour { threshold } => {
            (pb::ConditionKind::AeFourHour, Some(threshold.get()))
        }
    }
}

// ---- system values -------------------------------------------------------------------------

pub(crate) fn balances(
    balances: Vec<pb::CounterpartyBalance>,
    field: &str,
) -> Result<Vec<CounterpartyBalance>, DomainError> {
    balances
        .into_iter()
        .enumerate()
        .map(|(i, b)| {
            let at = item(field, i);
            Ok(CounterpartyBalance {
                counterparty: member(b.counterparty, &path(&at, "counterparty"))?,
                income: pence(b.income_pence),
                expenditure: pence(b.expenditure_pence),
                receivables: pence(b.receivables_pence),
                payables: pence(b.payables_pence),
            })
        })
        .collect()
}

pub(crate) fn balances_to_pb(balances: &[CounterpartyBalance]) -> Vec<pb::CounterpartyBalance> {
    balances
        .iter()
        .map(|b| pb::CounterpartyBalance {
            counterparty: b.counterparty.to_string(),
            income_pence: b.income.get(),
            expenditure_pence: b.expenditure.get(),
            receivables_pence: b.receivables.get(),
            payables_pence: b.payables.get(),
        })
        .collect()
}

// ---- budget values -------------------------------------------------------------------------

pub(crate) fn schemes(
    schemes: Vec<pb::Scheme>,
    field: &str,
    check: Check,
) -> Result<Vec<Scheme>, DomainError> {
    schemes
        .into_iter()
        .enumerate()
        .map(|(i, s)| {
            let at = item(field, i);
            Ok(Scheme {
                scheme: code(s.scheme, &path(&at, "scheme"))?,
                name: text(s.name, &path(&at, "name"), check)?,
                ring_fenced: s.ring_fenced,
            })
        })
        .collect()
}

pub(crate) fn schemes_to_pb(schemes: &[Scheme]) -> Vec<pb::Scheme> {
    schemes
        .iter()
        .map(|s| pb::Scheme {
            scheme: s.scheme.to_string(),
            name: s.name.to_string(),
            ring_fenced: s.ring_fenced,
        })
        .collect()
}

pub(crate) fn shares(
    shares: Vec<pb::Share>,
    field: &str,
    check: Check,
) -> Result<Vec<Share>, DomainError> {
    shares
        .into_iter()
        .enumerate()
        .map(|(i, s)| {
            let at = item(field, i);
            Ok(Share {
                member: member(s.member, &path(&at, "member"))?,
                share: bp(s.share_bp, &path(&at, "share_bp"), check)?,
            })
        })
        .collect()
}

pub(crate) fn shares_to_pb(shares: &[Share]) -> Vec<pb::Share> {
    shares
        .iter()
        .map(|s| pb::Share {
            member: s.member.to_string(),
            share_bp: s.share.get(),
        })
        .collect()
}

/// `Option<Vec<Share>>` through the `ShareList` wrapper: absent is `None`, present (even
/// empty) is `Some`.
pub(crate) fn share_list(
    list: Option<pb::ShareList>,
    field: &str,
    check: Check,
) -> Result<Option<Vec<Share>>, DomainError> {
    list.map(|l| shares(l.shares, &path(field, "shares"), check))
        .transpose()
}

pub(crate) fn share_list_to_pb(shares: Option<&[Share]>) -> Option<pb::ShareList> {
    shares.map(|s| pb::ShareList {
        shares: shares_to_pb(s),
    })
}

pub(crate) fn allocations(
    allocations: Vec<pb::Allocation>,
    field: &str,
) -> Result<Vec<Allocation>, DomainError> {
    allocations
        .into_iter()
        .enumerate()
        .map(|(i, a)| {
            Ok(Allocation {
                member: member(a.member, &path(&item(field, i), "member"))?,
                amount: pence(a.amount_pence),
            })
        })
        .collect()
}

pub(crate) fn allocations_to_pb(allocations: &[Allocation]) -> Vec<pb::Allocation> {
    allocations
        .iter()
        .map(|a| pb::Allocation {
            member: a.member.to_string(),
            amount_pence: a.amount.get(),
        })
        .collect()
}

// ---- fund values ---------------------------------------------------------------------------

pub(crate) fn recipients(
    recipients: Vec<pb::Recipient>,
    field: &str,
) -> Result<Vec<Recipient>, DomainError> {
    recipients
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            Ok(Recipient {
                member: member(r.member, &path(&item(field, i), "member"))?,
                allocation: pence(r.allocation_pence),
            })
        })
        .collect()
}

pub(crate) fn recipients_to_pb(recipients: &[Recipient]) -> Vec<pb::Recipient> {
    recipients
        .iter()
        .map(|r| pb::Recipient {
            member: r.member.to_string(),
            allocation_pence: r.allocation.get(),
        })
        .collect()
}

pub(crate) fn conditions(
    conditions: Vec<pb::Condition>,
    field: &str,
    check: Check,
) -> Result<Vec<Condition>, DomainError> {
    conditions
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            let at = item(field, i);
            Ok(Condition {
                condition: code(c.condition, &path(&at, "condition"))?,
                kind: condition_kind(c.kind, c.threshold_bp, &at, check)?,
                weight: bp(c.weight_bp, &path(&at, "weight_bp"), check)?,
            })
        })
        .collect()
}

pub(crate) fn conditions_to_pb(conditions: &[Condition]) -> Vec<pb::Condition> {
    conditions
        .iter()
        .map(|c| {
            let (kind, threshold_bp) = condition_kind_to_pb(c.kind);
            pb::Condition {
                condition: c.condition.to_string(),
                kind: kind.into(),
                weight_bp: c.weight.get(),
                threshold_bp,
            }
        })
        .collect()
}

/// Required figures (`field` is the `Figures` field itself).
pub(crate) fn figures(
    figures: Option<pb::Figures>,
    field: &str,
    check: Check,
) -> Result<Figures, DomainError> {
    use pb::figures::Figures as F;
    let figures = required(figures, field)?;
    match figures.figures {
        None => Err(invalid(
            field,
            "is required: set one of system_finance, ae_four_hour",
        )),
        Some(F::SystemFinance(f)) => Ok(Figures::SystemFinance {
            actual_ytd: pence(f.actual_ytd_pence),
            control_total_ytd: pence(f.control_total_ytd_pence),
        }),
        Some(F::AeFourHour(f)) => Ok(Figures::AeFourHour {
            performance: bp(
                f.performance_bp,
                &path(&path(field, "ae_four_hour"), "performance_bp"),
                check,
            )?,
        }),
    }
}

pub(crate) fn figures_to_pb(figures: Figures) -> pb::Figures {
    use pb::figures::Figures as F;
    let figures = match figures {
        Figures::SystemFinance {
            actual_ytd,
            control_total_ytd,
        } => F::SystemFinance(pb::figures::SystemFinance {
            actual_ytd_pence: actual_ytd.get(),
            control_total_ytd_pence: control_total_ytd.get(),
        }),
        Figures::AeFourHour { performance } => F::AeFourHour(pb::figures::AeFourHour {
            performance_bp: performance.get(),
        }),
    };
    pb::Figures {
        figures: Some(figures),
    }
}

pub(crate) fn evidence(
    evidence: Vec<pb::Evidence>,
    field: &str,
    check: Check,
) -> Result<Vec<Evidence>, DomainError> {
    evidence
        .into_iter()
        .enumerate()
        .map(|(i, e)| {
            let at = item(field, i);
            Ok(Evidence {
                condition: code(e.condition, &path(&at, "condition"))?,
                figures: figures(e.figures, &path(&at, "figures"), check)?,
            })
        })
        .collect()
}

pub(crate) fn evidence_to_pb(evidence: &[Evidence]) -> Vec<pb::Evidence> {
    evidence
        .iter()
        .map(|e| pb::Evidence {
            condition: e.condition.to_string(),
            figures: Some(figures_to_pb(e.figures)),
        })
        .collect()
}

pub(crate) fn outcomes(
    outcomes: Vec<pb::ConditionOutcome>,
    field: &str,
) -> Result<Vec<ConditionOutcome>, DomainError> {
    outcomes
        .into_iter()
        .enumerate()
        .map(|(i, o)| {
            let at = item(field, i);
            Ok(ConditionOutcome {
                condition: code(o.condition, &path(&at, "condition"))?,
                kind: condition_kind(o.kind, o.threshold_bp, &at, Check::ShapeOnly)?,
                weight: BasisPoints::new(o.weight_bp),
                amount: pence(o.amount_pence),
                figures: figures(o.figures, &path(&at, "figures"), Check::ShapeOnly)?,
                met: o.met,
                earned: pence(o.earned_pence),
                forfeited: pence(o.forfeited_pence),
            })
        })
        .collect()
}

pub(crate) fn outcomes_to_pb(outcomes: &[ConditionOutcome]) -> Vec<pb::ConditionOutcome> {
    outcomes
        .iter()
        .map(|o| {
            let (kind, threshold_bp) = condition_kind_to_pb(o.kind);
            pb::ConditionOutcome {
                condition: o.condition.to_string(),
                kind: kind.into(),
                weight_bp: o.weight.get(),
                threshold_bp,
                amount_pence: o.amount.get(),
                figures: Some(figures_to_pb(o.figures)),
                met: o.met,
                earned_pence: o.earned.get(),
                forfeited_pence: o.forfeited.get(),
            }
        })
        .collect()
}

// ---- contract values -----------------------------------------------------------------------

/// A required payment model (`field` is the `PaymentModel` field itself, usually `model`).
pub(crate) fn payment_model(
    model: Option<pb::PaymentModel>,
    field: &str,
    check: Check,
) -> Result<PaymentModel, DomainError> {
    use pb::payment_model::Model as M;
    let model = required(model, field)?;
    let at = |kind: &str, name: &str| path(&path(field, kind), name);
    match model.model {
        None => Err(invalid(
            field,
            "is required: set one of block, activity_tariff, aligned_payment, capitation, cquin",
        )),
        Some(M::Block(m)) => Ok(PaymentModel::Block {
            annual_value: pence(m.annual_value_pence),
        }),
        Some(M::ActivityTariff(m)) => Ok(PaymentModel::ActivityTariff {
            planned_units: m.planned_units,
            unit_price: pence(m.unit_price_pence),
        }),
        Some(M::AlignedPayment(m)) => Ok(PaymentModel::AlignedPayment {
            fixed: pence(m.fixed_pence),
            planned_units: m.planned_units,
            unit_price: pence(m.unit_price_pence),
            marginal_rate: bp(
                m.marginal_rate_bp,
                &at("aligned_payment", "marginal_rate_bp"),
                check,
            )?,
        }),
        Some(M::Capitation(m)) => Ok(PaymentModel::Capitation {
            per_head: pence(m.per_head_pence),
            population: m.population,
            gain_share: bp(m.gain_share_bp, &at("capitation", "gain_share_bp"), check)?,
            loss_share: bp(m.loss_share_bp, &at("capitation", "loss_share_bp"), check)?,
        }),
        Some(M::Cquin(m)) => Ok(PaymentModel::Cquin {
            base_value: pence(m.base_value_pence),
            rate: bp(m.rate_bp, &at("cquin", "rate_bp"), check)?,
        }),
    }
}

pub(crate) fn payment_model_to_pb(model: &PaymentModel) -> pb::PaymentModel {
    use pb::payment_model as m;
    let model = match *model {
        PaymentModel::Block { annual_value } => m::Model::Block(m::Block {
            annual_value_pence: annual_value.get(),
        }),
        PaymentModel::ActivityTariff {
            planned_units,
            unit_price,
        } => m::Model::ActivityTariff(m::ActivityTariff {
            planned_units,
            unit_price_pence: unit_price.get(),
        }),
        PaymentModel::AlignedPayment {
            fixed,
            planned_units,
            unit_price,
            marginal_rate,
        } => m::Model::AlignedPayment(m::AlignedPayment {
            fixed_pence: fixed.get(),
            planned_units,
            unit_price_pence: unit_price.get(),
            marginal_rate_bp: marginal_rate.get(),
        }),
        PaymentModel::Capitation {
            per_head,
            population,
            gain_share,
            loss_share,
        } => m::Model::Capitation(m::Capitation {
            per_head_pence: per_head.get(),
            population,
            gain_share_bp: gain_share.get(),
            loss_share_bp: loss_share.get(),
        }),
        PaymentModel::Cquin { base_value, rate } => m::Model::Cquin(m::Cquin {
            base_value_pence: base_value.get(),
            rate_bp: rate.get(),
        }),
    };
    pb::PaymentModel { model: Some(model) }
}

// ---- filed returns -------------------------------------------------------------------------

/// Who files a return: an ODS code, or empty for the system itself.
pub(crate) fn filer(text: String, field: &str) -> Result<Filer, DomainError> {
    if text.is_empty() {
        Ok(Filer::System)
    } else {
        member(text, field).map(Filer::Member)
    }
}

pub(crate) fn filer_to_pb(filer: &Filer) -> String {
    match filer {
        Filer::System => String::new(),
        Filer::Member(member) => member.to_string(),
    }
}

/// A report's fingerprint: exactly 32 bytes (SHA-256).
pub(crate) fn fingerprint(bytes: &[u8], field: &str) -> Result<[u8; 32], DomainError> {
    <[u8; 32]>::try_from(bytes).map_err(|_| {
        invalid(
            field,
            format!(
                "is {} bytes; a fingerprint is a SHA-256 digest of 32 bytes",
                bytes.len()
            ),
        )
    })
}

/// A required `ReportSpec` at `field`: its kind, and the scope and thresholds the kinds that
/// take them need (absent thresholds are the defaults); options given for a kind that takes
/// none are refused, so a return never names options that do not shape its report. Whether a
/// threshold is negative is the domain's rule.
pub(crate) fn report_spec(
    spec: Option<pb::ReportSpec>,
    field: &str,
) -> Result<ReportKind, DomainError> {
    let spec = required(spec, field)?;
    let at = |name: &str| path(field, name);
    let kind = match pb::ReportKind::try_from(spec.kind) {
        Ok(pb::ReportKind::Unspecified) => {
            return Err(invalid(
                at("kind"),
                "is required (REPORT_KIND_UNSPECIFIED is not a report)",
            ));
        }
        Ok(kind) => kind,
        Err(_) => {
            return Err(invalid(
                at("kind"),
                format!("{} is not a ReportKind", spec.kind),
            ));
        }
    };
    let all_members = match pb::ReportScope::try_from(spec.scope) {
        Ok(pb::ReportScope::Unspecified) => None,
        Ok(pb::ReportScope::System) => Some(false),
        Ok(pb::ReportScope::AllMembers) => Some(true),
        Err(_) => {
            return Err(invalid(
                at("scope"),
                format!("{} is not a ReportScope", spec.scope),
            ));
        }
    };
    let takes_scope = matches!(
        kind,
        pb::ReportKind::Consolidation | pb::ReportKind::AgreementOfBalances
    );
    let kind_name = kind.as_str_name();
    match (takes_scope, all_members) {
        (true, None) => {
            return Err(invalid(
                at("scope"),
                format!(
                    "is required for {kind_name} (REPORT_SCOPE_SYSTEM or REPORT_SCOPE_ALL_MEMBERS)"
                ),
            ));
        }
        (false, Some(_)) => {
            return Err(invalid(
                at("scope"),
                format!("{kind_name} takes no scope; leave it unspecified"),
            ));
        }
        _ => {}
    }
    let thresholds = [
        (
            "receivables_payables_threshold_pence",
            spec.receivables_payables_threshold_pence,
        ),
        (
            "income_expenditure_threshold_pence",
            spec.income_expenditure_threshold_pence,
        ),
    ];
    if kind != pb::ReportKind::AgreementOfBalances
        && let Some((name, _)) = thresholds.iter().find(|(_, value)| value.is_some())
    {
        return Err(invalid(
            at(name),
            format!("{kind_name} takes no thresholds; leave it out"),
        ));
    }
    let all_members = all_members.unwrap_or(false);
    Ok(match kind {
        pb::ReportKind::Position => ReportKind::Position,
        pb::ReportKind::Consolidation => ReportKind::Consolidation(if all_members {
            ConsolidationScope::WiderIcs
        } else {
            ConsolidationScope::ControlTotal
        }),
        pb::ReportKind::PooledBudgets => ReportKind::PooledBudgets,
        pb::ReportKind::Contracts => ReportKind::Contracts,
        pb::ReportKind::Funds => ReportKind::Funds,
        pb::ReportKind::AgreementOfBalances => {
            let defaults = AobThresholds::default();
            ReportKind::AgreementOfBalances(AobOptions {
                thresholds: AobThresholds {
                    receivables_payables: spec
                        .receivables_payables_threshold_pence
                        .map_or(defaults.receivables_payables, Pence::new),
                    income_expenditure: spec
                        .income_expenditure_threshold_pence
                        .map_or(defaults.income_expenditure, Pence::new),
                },
                scope: if all_members {
                    AobScope::AllMembers
                } else {
                    AobScope::NhsBodies
                },
            })
        }
        pb::ReportKind::Adjustments => ReportKind::Adjustments,
        // Refused above.
        pb::ReportKind::Unspecified => {
            return Err(invalid(at("kind"), "is required"));
        }
    })
}

/// The proto form of a report kind; an Agreement of Balances carries both thresholds.
pub(crate) fn report_spec_to_pb(kind: ReportKind) -> pb::ReportSpec {
    let spec = |kind: pb::ReportKind, scope: pb::ReportScope| pb::ReportSpec {
        kind: kind.into(),
        scope: scope.into(),
        receivables_payables_threshold_pence: None,
        income_expenditure_threshold_pence: None,
    };
    let none = pb::ReportScope::Unspecified;
    match kind {
        ReportKind::Position => spec(pb::ReportKind::Position, none),
        ReportKind::Consolidation(scope) => spec(
            pb::ReportKind::Consolidation,
            match scope {
                ConsolidationScope::ControlTotal => pb::ReportScope::System,
                ConsolidationScope::WiderIcs => pb::ReportScope::AllMembers,
            },
        ),
        ReportKind::PooledBudgets => spec(pb::ReportKind::PooledBudgets, none),
        ReportKind::Contracts => spec(pb::ReportKind::Contracts, none),
        ReportKind::Funds => spec(pb::ReportKind::Funds, none),
        ReportKind::AgreementOfBalances(options) => pb::ReportSpec {
            receivables_payables_threshold_pence: Some(
                options.thresholds.receivables_payables.get(),
            ),
            income_expenditure_threshold_pence: Some(options.thresholds.income_expenditure.get()),
            ..spec(
                pb::ReportKind::AgreementOfBalances,
                match options.scope {
                    AobScope::NhsBodies => pb::ReportScope::System,
                    AobScope::AllMembers => pb::ReportScope::AllMembers,
                },
            )
        },
        ReportKind::Adjustments => spec(pb::ReportKind::Adjustments, none),
    }
}
