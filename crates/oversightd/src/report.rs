//! Requests checked, and reports built from the fleet: the figures come from the domain
//! (`domain::position` for the financial ones, `domain::oversight` for the operational ones);
//! this module only chooses which to ask for and puts them in their protobuf form.

use std::fmt;

use api::oversight_pb as pb;
use domain::oversight::{Comparison, Growth, MetricBook, QuarterOf, Ranked, rank};
use domain::position::{AsOf, PositionReport, Report, ReportError, Snapshot};
use domain::system::Metric;
use domain::{FinancialYear, Quarter, SystemId};
use follow::fleet::Fleet;
use follow::projection::Checkpointed;
use follow::status::Status as FollowStatus;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::view::SystemView;

/// Why a request was not answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QueryError {
    /// INVALID_ARGUMENT: the request is malformed; `field` is its proto field name.
    Invalid { field: &'static str, reason: String },
    /// NOT_FOUND: no event of this system has been folded.
    UnknownSystem(String),
    /// FAILED_PRECONDITION: the figures do not exist yet; says what is missing.
    Missing(String),
    /// INTERNAL.
    Internal(String),
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QueryError::Invalid { field, reason } => write!(f, "{field}: {reason}"),
            QueryError::UnknownSystem(system) => {
                write!(f, "system '{system}': oversightd has no event of it")
            }
            QueryError::Missing(what) => write!(f, "{what}"),
            QueryError::Internal(what) => write!(f, "{what}"),
        }
    }
}

impl From<QueryError> for Status {
    fn from(error: QueryError) -> Status {
        let message = error.to_string();
        match error {
            QueryError::Invalid { field, reason } => Status::with_error_details(
                Code::InvalidArgument,
                message,
                ErrorDetails::with_bad_request_violation(field, reason),
            ),
            QueryError::UnknownSystem(system) => Status::with_error_details(
                Code::NotFound,
                message,
                ErrorDetails::with_resource_info("system", system, "", ""),
            ),
            QueryError::Missing(_) => Status::failed_precondition(message),
            QueryError::Internal(_) => Status::internal(message),
        }
    }
}

fn invalid(field: &'static str, reason: impl Into<String>) -> QueryError {
    QueryError::Invalid {
        field,
        reason: reason.into(),
    }
}

fn report_error(system: &SystemId, error: ReportError) -> QueryError {
    match error {
        ReportError::NotEstablished { .. } => {
            QueryError::Missing(format!("system {system} has not been established"))
        }
        other => QueryError::Internal(format!("system {system}: {other}")),
    }
}

/// A checked `PerformanceRequest`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PerformanceQuery {
    pub system: SystemId,
    pub at: QuarterOf,
    pub baseline: FinancialYear,
}

/// A checked `RankingRequest`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RankingQuery {
    pub at: QuarterOf,
    pub measure: Measure,
}

/// What systems are ranked on (the baseline goes with the growth measures only).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Measure {
    VarianceYtd,
    ForecastVariance,
    Growth {
        metric: Metric,
        baseline: FinancialYear,
    },
    AeFourHour,
}

fn year(value: u32, field: &'static str) -> Result<FinancialYear, QueryError> {
    FinancialYear::new(value).map_err(|e| invalid(field, e.to_string()))
}

fn quarter_of(year_value: u32, quarter: u32) -> Result<QuarterOf, QueryError> {
    Ok(QuarterOf {
        year: year(year_value, "year")?,
        quarter: Quarter::new(quarter).map_err(|e| invalid("quarter", e.to_string()))?,
    })
}

fn baseline(value: u32, at: QuarterOf) -> Result<FinancialYear, QueryError> {
    let baseline = year(value, "baseline_year")?;
    if baseline >= at.year {
        return Err(invalid(
            "baseline_year",
            format!("{baseline} is not before {}", at.year),
        ));
    }
    Ok(baseline)
}

impl PerformanceQuery {
    pub fn from_proto(request: &pb::PerformanceRequest) -> Result<PerformanceQuery, QueryError> {
        let system = SystemId::new(request.system.clone())
            .map_err(|e| invalid("system", format!("'{}': {e}", request.system)))?;
        let at = quarter_of(request.year, request.quarter)?;
        let baseline = baseline(request.baseline_year, at)?;
        Ok(PerformanceQuery {
            system,
            at,
            baseline,
        })
    }
}

impl RankingQuery {
    pub fn from_proto(request: &pb::RankingRequest) -> Result<RankingQuery, QueryError> {
        let at = quarter_of(request.year, request.quarter)?;
        let growth = |metric| -> Result<Measure, QueryError> {
            Ok(Measure::Growth {
                metric,
                baseline: baseline(request.baseline_year, at)?,
            })
        };
        let measure = match pb::Measure::try_from(request.measure) {
            Ok(pb::Measure::VarianceYtd) => Measure::VarianceYtd,
            Ok(pb::Measure::ForecastVariance) => Measure::ForecastVariance,
            Ok(pb::Measure::EmergencyAdmissionsGrowth) => growth(Metric::EmergencyAdmissions)?,
            Ok(pb::Measure::EmergencyBedDaysGrowth) => growth(Metric::EmergencyBedDays)?,
            Ok(pb::Measure::AeFourHour) => Measure::AeFourHour,
            Ok(pb::Measure::Unspecified) => {
                return Err(invalid(
                    "measure",
                    "MEASURE_UNSPECIFIED: say what to rank on",
                ));
            }
            Err(_) => {
                return Err(invalid(
                    "measure",
                    format!("{} is not a Measure", request.measure),
                ));
            }
        };
        Ok(RankingQuery { at, measure })
    }
}

fn folded(checkpointed: &Checkpointed<SystemView>) -> pb::Folded {
    pb::Folded {
        sequence: checkpointed.sequence,
        hash: if checkpointed.sequence == 0 {
            Vec::new()
        } else {
            checkpointed.hash.to_vec()
        },
        recorded_at_us: checkpointed.recorded_at_us,
    }
}

/// Every system, in id order.
pub fn list_systems(fleet: &Fleet<SystemView>, status: &FollowStatus) -> pb::ListSystemsReply {
    let fresh = Checkpointed::default();
    // A system stuck on its very first event has nothing folded, but is listed all the same.
    let stuck_only = status
        .stuck
        .keys()
        .filter(|system| !fleet.contains_key(*system))
        .map(|system| (system, &fresh));
    let mut systems: Vec<pb::SystemSummary> = fleet
        .iter()
        .chain(stuck_only)
        .map(|(system, checkpointed)| {
            let view = &checkpointed.projection;
            let established = view.established.as_ref();
            let stuck = status.stuck.get(system);
            pb::SystemSummary {
                system: system.to_string(),
                name: established.map(|e| e.name.to_string()).unwrap_or_default(),
                first_year: established.map_or(0, |e| u32::from(e.first_year.start_year())),
                members: view.members,
                folded: Some(folded(checkpointed)),
                stuck_sequence: stuck.map_or(0, |s| s.sequence),
                stuck_reason: stuck.map(|s| s.reason.clone()).unwrap_or_default(),
            }
        })
        .collect();
    systems.sort_by(|a, b| a.system.cmp(&b.system));
    let consumer = status.consumer.as_ref();
    pb::ListSystemsReply {
        systems,
        parked: 0,
        consumer_error: consumer.map(|t| t.reason.clone()).unwrap_or_default(),
        consumer_error_since_us: consumer.map_or(0, |t| t.since_us),
    }
}

/// Every system's metrics in one book (each book is keyed by its own system).
pub fn metric_book(fleet: &Fleet<SystemView>) -> MetricBook {
    let mut book = MetricBook::default();
    for checkpointed in fleet.values() {
        book.merge(&checkpointed.projection.metrics);
    }
    book
}

fn quarter_name(at: QuarterOf) -> String {
    format!("{} {}", at.year, at.quarter)
}

fn year_to_pb(year: FinancialYear) -> u32 {
    u32::from(year.start_year())
}

/// The position at the quarter's last month, if any member in the control total has a plan
/// for the year (else there is no control total to report against).
fn position_at(
    system: &SystemId,
    snapshot: &Snapshot<'_>,
    at: QuarterOf,
) -> Result<Option<PositionReport>, QueryError> {
    let report = snapshot
        .position(at.year, at.quarter.last_month())
        .map_err(|e| report_error(system, e))?;
    let planned = report
        .members
        .iter()
        .any(|m| m.in_control_total && m.plan_revision.is_some());
    Ok(planned.then_some(report))
}

fn financial(
    system: &SystemId,
    view: &SystemView,
    at: QuarterOf,
) -> Result<Option<pb::Financial>, QueryError> {
    let snapshot = view
        .position
        .at(AsOf::Latest)
        .map_err(|e| report_error(system, e))?;
    let Some(report) = position_at(system, &snapshot, at)? else {
        return Ok(None);
    };
    let month = at.quarter.last_month();
    let funds = snapshot
        .funds_statement(at.year, month)
        .map_err(|e| report_error(system, e))?;
    let mut tranches = Vec::new();
    for fund in funds.funds.iter().filter(|f| f.year == at.year) {
        for tranche in fund.tranches.iter().filter(|t| t.quarter <= at.quarter) {
            let assessment = tranche.assessment.as_ref();
            tranches.push(pb::Tranche {
                fund: fund.fund.to_string(),
                quarter: u32::from(tranche.quarter.number()),
                amount_pence: tranche.amount.get(),
                assessed: assessment.is_some(),
                assessed_in: assessment.map(|a| api::period_to_proto(a.period)),
                earned_pence: assessment.map_or(0, |a| a.earned.get()),
                forfeited_pence: assessment.map_or(0, |a| a.forfeited.get()),
                conditions: assessment
                    .map(|a| api::condition_outcomes_to_proto(&a.outcomes))
                    .unwrap_or_default(),
                failed_conditions: assessment
                    .map(|a| {
                        a.outcomes
                            .iter()
                            .filter(|o| !o.met)
                            .map(|o| o.condition.to_string())
                            .collect()
                    })
                    .unwrap_or_default(),
            });
        }
    }
    let fingerprint = report
        .fingerprint()
        .map_err(|e| QueryError::Internal(format!("fingerprinting the position: {e}")))?;
    let ct = &report.control_total;
    Ok(Some(pb::Financial {
        month: u32::from(month.number()),
        control_total_pence: ct.plan_annual.get(),
        control_total_ytd_pence: ct.plan_ytd.get(),
        actual_ytd_pence: ct.actual_ytd.get(),
        variance_ytd_pence: ct.variance_ytd.get(),
        forecast_outturn_pence: ct.forecast_outturn.get(),
        forecast_variance_pence: ct.forecast_variance.get(),
        fund_available_ytd_pence: ct.fund_available_ytd.get(),
        fund_earned_ytd_pence: ct.fund_earned_ytd.get(),
        fund_forfeited_ytd_pence: ct.fund_forfeited_ytd.get(),
        fund_clawed_back_ytd_pence: ct.fund_clawed_back_ytd.get(),
        after_fund_ytd_pence: ct.after_fund_ytd.get(),
        wider_ics_actual_ytd_pence: report.wider_ics.actual_ytd.get(),
        tranches,
        returns_missing: report
            .members
            .iter()
            .flat_map(|m| {
                m.returns_missing
                    .iter()
                    .map(move |month| format!("{} {month}", m.member))
            })
            .collect(),
        position_fingerprint: fingerprint.to_vec(),
    }))
}

fn growth_to_pb(growth: Growth) -> pb::Growth {
    pb::Growth {
        current: growth.current,
        baseline: growth.baseline,
        growth_bp: growth.growth_bp,
    }
}

fn comparison_to_pb(comparison: Comparison) -> pb::CountComparison {
    pb::CountComparison {
        system: Some(growth_to_pb(comparison.system)),
        rest_of_country: comparison.rest.map(growth_to_pb),
        rest_systems: comparison
            .rest_systems
            .iter()
            .map(ToString::to_string)
            .collect(),
    }
}

fn metric_words(metric: Metric) -> &'static str {
    match metric {
        Metric::EmergencyAdmissions => "emergency admissions",
        Metric::EmergencyBedDays => "emergency bed days",
        Metric::AeFourHour => "A&E four-hour performance",
    }
}

/// Why a count comparison could not be made.
fn missing_count(
    book: &MetricBook,
    system: &SystemId,
    metric: Metric,
    at: QuarterOf,
    baseline: FinancialYear,
) -> String {
    let then = QuarterOf {
        year: baseline,
        quarter: at.quarter,
    };
    let words = metric_words(metric);
    match (
        book.quarter_total(system, at, metric),
        book.quarter_total(system, then, metric),
    ) {
        (None, None) => format!(
            "{words}: not reported for {} nor for the baseline {}",
            quarter_name(at),
            quarter_name(then)
        ),
        (None, Some(_)) => format!("{words}: not reported for {}", quarter_name(at)),
        (Some(_), None) => format!(
            "{words}: not reported for the baseline {}",
            quarter_name(then)
        ),
        (Some(_), Some(_)) => format!(
            "{words}: no growth against the baseline {} (a baseline of zero, or beyond range)",
            quarter_name(then)
        ),
    }
}

/// One system's performance for a quarter.
pub fn performance(
    fleet: &Fleet<SystemView>,
    query: &PerformanceQuery,
) -> Result<pb::PerformanceReport, QueryError> {
    let system = &query.system;
    let checkpointed = fleet
        .get(system)
        .ok_or_else(|| QueryError::UnknownSystem(system.to_string()))?;
    let view = &checkpointed.projection;
    let at = query.at;
    let mut missing = Vec::new();
    let financial = financial(system, view, at)?;
    if financial.is_none() {
        missing.push(format!(
            "financial: no member in the control total has a plan for {}",
            at.year
        ));
    }
    let book = metric_book(fleet);
    let mut count = |metric| match book.compare(system, metric, at, query.baseline) {
        Some(comparison) => Some(comparison_to_pb(comparison)),
        None => {
            missing.push(missing_count(&book, system, metric, at, query.baseline));
            None
        }
    };
    let emergency_admissions = count(Metric::EmergencyAdmissions);
    let emergency_bed_days = count(Metric::EmergencyBedDays);
    let ae_four_hour = book
        .quarter_ae(system, at)
        .map(|performance| pb::AeFourHour {
            performance_bp: performance.get(),
        });
    if ae_four_hour.is_none() {
        missing.push(format!(
            "{}: not reported for {}",
            metric_words(Metric::AeFourHour),
            quarter_name(at)
        ));
    }
    let operational = pb::Operational {
        emergency_admissions,
        emergency_bed_days,
        ae_four_hour,
    };
    let nothing_operational = operational.emergency_admissions.is_none()
        && operational.emergency_bed_days.is_none()
        && operational.ae_four_hour.is_none();
    if financial.is_none() && nothing_operational {
        return Err(QueryError::Missing(format!(
            "system {system} has no figures for {}: {}",
            quarter_name(at),
            missing.join("; ")
        )));
    }
    Ok(pb::PerformanceReport {
        system: system.to_string(),
        name: view
            .established
            .as_ref()
            .map(|e| e.name.to_string())
            .unwrap_or_default(),
        year: year_to_pb(at.year),
        quarter: u32::from(at.quarter.number()),
        baseline_year: year_to_pb(query.baseline),
        folded: Some(folded(checkpointed)),
        financial,
        operational: Some(operational),
        missing,
    })
}

fn financial_values(
    fleet: &Fleet<SystemView>,
    at: QuarterOf,
    forecast: bool,
) -> Result<Vec<(SystemId, i64)>, QueryError> {
    let mut measured = Vec::new();
    for (system, checkpointed) in fleet {
        let snapshot = checkpointed
            .projection
            .position
            .at(AsOf::Latest)
            .map_err(|e| report_error(system, e))?;
        let report = match position_at(system, &snapshot, at) {
            Ok(Some(report)) => report,
            // Not established, or no plan for the year: unranked.
            Ok(None) | Err(QueryError::Missing(_)) => continue,
            Err(error) => return Err(error),
        };
        let figures = &report.control_total;
        let value = if forecast {
            figures.forecast_variance
        } else {
            figures.variance_ytd
        };
        measured.push((system.clone(), value.get()));
    }
    Ok(measured)
}

/// Every system ranked on one measure.
pub fn ranking(
    fleet: &Fleet<SystemView>,
    query: &RankingQuery,
) -> Result<pb::RankingReport, QueryError> {
    let at = query.at;
    let (measure, higher_is_better, in_pence, baseline_year) = match query.measure {
        Measure::VarianceYtd => (pb::Measure::VarianceYtd, true, true, 0),
        Measure::ForecastVariance => (pb::Measure::ForecastVariance, true, true, 0),
        Measure::Growth { metric, baseline } => (
            match metric {
                Metric::EmergencyBedDays => pb::Measure::EmergencyBedDaysGrowth,
                _ => pb::Measure::EmergencyAdmissionsGrowth,
            },
            false,
            false,
            year_to_pb(baseline),
        ),
        Measure::AeFourHour => (pb::Measure::AeFourHour, true, false, 0),
    };
    let ranked: Vec<Ranked> = match query.measure {
        Measure::VarianceYtd => rank(financial_values(fleet, at, false)?, true),
        Measure::ForecastVariance => rank(financial_values(fleet, at, true)?, true),
        Measure::Growth { metric, baseline } => {
            metric_book(fleet).rank_growth(metric, at, baseline)
        }
        Measure::AeFourHour => metric_book(fleet).rank_ae(at),
    };
    if ranked.is_empty() {
        let what = match query.measure {
            Measure::VarianceYtd | Measure::ForecastVariance => {
                format!("a plan for {}", at.year)
            }
            Measure::Growth { metric, baseline } => format!(
                "{} reported for {} and the baseline {}",
                metric_words(metric),
                quarter_name(at),
                quarter_name(QuarterOf {
                    year: baseline,
                    quarter: at.quarter
                })
            ),
            Measure::AeFourHour => format!(
                "{} reported for {}",
                metric_words(Metric::AeFourHour),
                quarter_name(at)
            ),
        };
        return Err(QueryError::Missing(format!(
            "no system has {what}: nothing to rank"
        )));
    }
    let unranked = fleet
        .keys()
        .filter(|s| !ranked.iter().any(|r| &r.system == *s))
        .map(ToString::to_string)
        .collect();
    Ok(pb::RankingReport {
        measure: measure.into(),
        year: year_to_pb(at.year),
        quarter: u32::from(at.quarter.number()),
        baseline_year,
        higher_is_better,
        ranked: ranked
            .into_iter()
            .map(|r| pb::Ranked {
                rank: r.rank,
                system: r.system.to_string(),
                value: Some(if in_pence {
                    pb::ranked::Value::ValuePence(r.value_bp)
                } else {
                    pb::ranked::Value::ValueBp(r.value_bp)
                }),
            })
            .collect(),
        unranked,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn performance_request(
        system: &str,
        year: u32,
        quarter: u32,
        baseline: u32,
    ) -> pb::PerformanceRequest {
        pb::PerformanceRequest {
            system: system.to_string(),
            year,
            quarter,
            baseline_year: baseline,
        }
    }

    fn field_of(result: Result<impl fmt::Debug, QueryError>) -> &'static str {
        match result {
            Err(QueryError::Invalid { field, .. }) => field,
            other => panic!("expected INVALID_ARGUMENT, got {other:?}"),
        }
    }

    #[test]
    fn a_performance_request_is_checked_field_by_field() {
        let ok = PerformanceQuery::from_proto(&performance_request("kav", 2018, 2, 2017))
            .expect("valid");
        assert_eq!(ok.system.as_str(), "kav");
        assert_eq!(ok.at.year.start_year(), 2018);
        assert_eq!(ok.at.quarter.number(), 2);
        assert_eq!(ok.baseline.start_year(), 2017);

        let cases = [
            (performance_request("", 2018, 2, 2017), "system"),
            (performance_request("KAV", 2018, 2, 2017), "system"),
            (performance_request("k.v", 2018, 2, 2017), "system"),
            (performance_request("kav", 0, 2, 2017), "year"),
            (performance_request("kav", 3000, 2, 2017), "year"),
            (performance_request("kav", 2018, 0, 2017), "quarter"),
            (performance_request("kav", 2018, 5, 2017), "quarter"),
            (performance_request("kav", 2018, 2, 0), "baseline_year"),
            (performance_request("kav", 2018, 2, 2018), "baseline_year"),
            (performance_request("kav", 2018, 2, 2019), "baseline_year"),
        ];
        for (request, field) in cases {
            assert_eq!(
                field_of(PerformanceQuery::from_proto(&request)),
                field,
                "{request:?}"
            );
        }
    }

    #[test]
    fn a_ranking_request_needs_a_measure_and_a_baseline_only_for_growth() {
        let request = |measure: i32, baseline: u32| pb::RankingRequest {
            year: 2018,
            quarter: 3,
            baseline_year: baseline,
            measure,
        };
        let ae = RankingQuery::from_proto(&request(pb::Measure::AeFourHour.into(), 0))
            .expect("no baseline needed");
        assert_eq!(ae.measure, Measure::AeFourHour);
        let variance = RankingQuery::from_proto(&request(pb::Measure::VarianceYtd.into(), 0))
            .expect("no baseline needed");
        assert_eq!(variance.measure, Measure::VarianceYtd);
        let growth =
            RankingQuery::from_proto(&request(pb::Measure::EmergencyBedDaysGrowth.into(), 2016))
                .expect("valid");
        assert_eq!(
            growth.measure,
            Measure::Growth {
                metric: Metric::EmergencyBedDays,
                baseline: FinancialYear::new(2016).expect("year"),
            }
        );
        assert_eq!(
            field_of(RankingQuery::from_proto(&request(0, 2017))),
            "measure"
        );
        assert_eq!(
            field_of(RankingQuery::from_proto(&request(99, 2017))),
            "measure"
        );
        assert_eq!(
            field_of(RankingQuery::from_proto(&request(
                pb::Measure::EmergencyAdmissionsGrowth.into(),
                0
            ))),
            "baseline_year"
        );
        assert_eq!(
            field_of(RankingQuery::from_proto(&request(
                pb::Measure::EmergencyAdmissionsGrowth.into(),
                2018
            ))),
            "baseline_year"
        );
        let mut bad_quarter = request(pb::Measure::AeFourHour.into(), 0);
        bad_quarter.quarter = 9;
        assert_eq!(field_of(RankingQuery::from_proto(&bad_quarter)), "quarter");
        let mut bad_year = request(pb::Measure::AeFourHour.into(), 0);
        bad_year.year = 1999;
        assert_eq!(field_of(RankingQuery::from_proto(&bad_year)), "year");
    }

    #[test]
    fn statuses_carry_the_field_and_the_code() {
        let status = Status::from(invalid("quarter", "quarter 5 is outside 1..=4"));
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(status.message().starts_with("quarter: "));
        let details = status.get_error_details();
        let violations = details
            .bad_request()
            .map(|b| b.field_violations.clone())
            .unwrap_or_default();
        assert_eq!(violations.len(), 1);
        assert_eq!(violations[0].field, "quarter");
        assert_eq!(
            Status::from(QueryError::UnknownSystem("nowhere".into())).code(),
            Code::NotFound
        );
        assert_eq!(
            Status::from(QueryError::Missing("no plan".into())).code(),
            Code::FailedPrecondition
        );
    }

    #[test]
    fn an_unknown_system_is_not_found_and_an_empty_fleet_ranks_nothing() {
        let fleet = Fleet::<SystemView>::new();
        let query = PerformanceQuery::from_proto(&performance_request("kav", 2018, 2, 2017))
            .expect("valid");
        assert_eq!(
            performance(&fleet, &query),
            Err(QueryError::UnknownSystem("kav".into()))
        );
        let ranking_query = RankingQuery {
            at: query.at,
            measure: Measure::AeFourHour,
        };
        assert!(matches!(
            ranking(&fleet, &ranking_query),
            Err(QueryError::Missing(_))
        ));
        assert!(
            list_systems(&fleet, &FollowStatus::default())
                .systems
                .is_empty()
        );
    }
}
