//! `icsctl oversight …`: the regulator's view from oversightd — every system, one system's
//! performance for a quarter, and rankings across systems.

use anyhow::Context;
use api::oversight_pb as pb;
use api::oversight_pb::oversight_service_client::OversightServiceClient;
use clap::{Subcommand, ValueEnum};
use comfy_table::{CellAlignment, Table, presets::UTF8_FULL_CONDENSED};

use crate::Global;
use crate::money::pounds;

#[derive(Debug, Subcommand)]
pub enum Oversight {
    /// Every system oversightd follows, and how far it has folded each one's log.
    Systems,
    /// One system for a quarter: against its control total, the sustainability fund, and
    /// operational growth beside the rest of the country.
    Performance {
        #[arg(long, default_value = "kav")]
        system: String,
        /// Financial year: `2018` or `2018/19`.
        #[arg(long, value_parser = crate::parse::year)]
        year: domain::FinancialYear,
        /// Quarter of the financial year, 1..4 (or Q1..Q4).
        #[arg(long, value_parser = crate::parse::quarter)]
        quarter: domain::Quarter,
        /// The year whose same quarter growth is measured against (default: the year before).
        #[arg(long, value_parser = crate::parse::year)]
        baseline: Option<domain::FinancialYear>,
    },
    /// Every system ranked on one measure.
    Ranking {
        #[arg(long, value_parser = crate::parse::year)]
        year: domain::FinancialYear,
        #[arg(long, value_parser = crate::parse::quarter)]
        quarter: domain::Quarter,
        #[arg(long, value_parser = crate::parse::year)]
        baseline: Option<domain::FinancialYear>,
        #[arg(long, value_enum)]
        measure: Measure,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Measure {
    /// Year-to-date actual against the control total.
    Variance,
    /// Forecast outturn against the control total.
    ForecastVariance,
    /// Emergency admissions growth against the baseline quarter.
    Admissions,
    /// Emergency bed days growth against the baseline quarter.
    BedDays,
    /// A&E four-hour performance.
    AeFourHour,
}

impl Measure {
    fn to_proto(self) -> pb::Measure {
        match self {
            Measure::Variance => pb::Measure::VarianceYtd,
            Measure::ForecastVariance => pb::Measure::ForecastVariance,
            Measure::Admissions => pb::Measure::EmergencyAdmissionsGrowth,
            Measure::BedDays => pb::Measure::EmergencyBedDaysGrowth,
            Measure::AeFourHour => pb::Measure::AeFourHour,
        }
    }
}

pub async fn connect(
    global: &Global,
) -> anyhow::Result<OversightServiceClient<tonic::transport::Channel>> {
    let channel = crate::channel_to(global, &global.oversight_server)
        .await
        .with_context(|| format!("connecting to oversightd at {}", global.oversight_server))?;
    Ok(OversightServiceClient::new(channel))
}

fn baseline(year: domain::FinancialYear, baseline: Option<domain::FinancialYear>) -> u32 {
    baseline.map_or_else(
        || u32::from(year.start_year()).saturating_sub(1),
        |b| u32::from(b.start_year()),
    )
}

pub async fn run(global: &Global, command: Oversight) -> anyhow::Result<()> {
    let mut client = connect(global).await?;
    let status = crate::output::status_error;
    match command {
        Oversight::Systems => {
            let reply = client
                .list_systems(crate::request(global, pb::ListSystemsRequest {})?)
                .await
                .map_err(status)?
                .into_inner();
            if global.json {
                println!("{}", serde_json::to_string_pretty(&reply)?);
                return Ok(());
            }
            let mut t = table(&["system", "name", "first year", "members", "folded to"], 3);
            for s in &reply.systems {
                t.add_row(vec![
                    s.system.clone(),
                    s.name.clone(),
                    year_text(s.first_year),
                    s.members.to_string(),
                    s.folded
                        .as_ref()
                        .map_or("-".to_string(), |f| f.sequence.to_string()),
                ]);
            }
            println!("{t}");
            if reply.parked > 0 {
                println!(
                    "{} message(s) from NATS refused and parked by oversightd (see its log)",
                    reply.parked
                );
            }
        }
        Oversight::Performance {
            system,
            year,
            quarter,
            baseline: base,
        } => {
            let request = pb::PerformanceRequest {
                system,
                year: u32::from(year.start_year()),
                quarter: u32::from(quarter.number()),
                baseline_year: baseline(year, base),
            };
            let report = client
                .get_performance(crate::request(global, request)?)
                .await
                .map_err(status)?
                .into_inner();
            if global.json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", performance_text(&report));
            }
        }
        Oversight::Ranking {
            year,
            quarter,
            baseline: base,
            measure,
        } => {
            let request = pb::RankingRequest {
                year: u32::from(year.start_year()),
                quarter: u32::from(quarter.number()),
                baseline_year: baseline(year, base),
                measure: measure.to_proto().into(),
            };
            let report = client
                .get_ranking(crate::request(global, request)?)
                .await
                .map_err(status)?
                .into_inner();
            if global.json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", ranking_text(&report));
            }
        }
    }
    Ok(())
}

fn table(header: &[&str], right_from: usize) -> Table {
    let mut table = Table::new();
    table
        .load_style(UTF8_FULL_CONDENSED)
        .set_header(header.to_vec());
    for (i, column) in table.column_iter_mut().enumerate() {
        if i >= right_from {
            column.set_cell_alignment(CellAlignment::Right);
        }
    }
    table
}

fn year_text(start: u32) -> String {
    domain::FinancialYear::new(start).map_or_else(|_| start.to_string(), |y| y.to_string())
}

/// `260` bp → `2.60%`; negatives signed.
fn percent(bp: i64) -> String {
    let magnitude = i128::from(bp).unsigned_abs();
    let sign = if bp < 0 { "-" } else { "" };
    format!("{sign}{}.{:02}%", magnitude / 100, magnitude % 100)
}

fn growth_row(name: &str, comparison: Option<&pb::CountComparison>) -> Vec<String> {
    let Some(c) = comparison else {
        return vec![
            name.to_string(),
            "-".into(),
            "-".into(),
            "-".into(),
            "-".into(),
        ];
    };
    let growth = |g: Option<&pb::Growth>| g.map_or("-".to_string(), |g| percent(g.growth_bp));
    let counts = |g: Option<&pb::Growth>| {
        g.map_or("-".to_string(), |g| {
            format!("{} → {}", g.baseline, g.current)
        })
    };
    vec![
        name.to_string(),
        counts(c.system.as_ref()),
        growth(c.system.as_ref()),
        growth(c.rest_of_country.as_ref()),
        c.rest_systems.join(", "),
    ]
}

pub fn performance_text(r: &pb::PerformanceReport) -> String {
    let mut out = format!(
        "{} ({}) — {} Q{}, growth against {} Q{}\n",
        r.name,
        r.system,
        year_text(r.year),
        r.quarter,
        year_text(r.baseline_year),
        r.quarter
    );
    if let Some(f) = &r.financial {
        let mut t = table(&["", ""], 1);
        t.set_header(vec![
            format!("financial, M1–M{} year to date", f.month),
            String::new(),
        ]);
        for (name, pence) in [
            ("control total (year)", f.control_total_pence),
            ("control total to date", f.control_total_ytd_pence),
            ("actual before the fund", f.actual_ytd_pence),
            ("variance", f.variance_ytd_pence),
            ("forecast outturn", f.forecast_outturn_pence),
            ("forecast variance", f.forecast_variance_pence),
            ("sustainability fund earned", f.fund_earned_ytd_pence),
            ("sustainability fund forfeited", f.fund_forfeited_ytd_pence),
            ("after the fund", f.after_fund_ytd_pence),
            ("wider ICS actual", f.wider_ics_actual_ytd_pence),
        ] {
            t.add_row(vec![name.to_string(), pounds(pence)]);
        }
        out.push_str(&format!("{t}\n"));
        let mut tranches = table(
            &[
                "fund",
                "quarter",
                "tranche",
                "earned",
                "forfeited",
                "failed",
            ],
            2,
        );
        for tr in &f.tranches {
            tranches.add_row(vec![
                tr.fund.clone(),
                format!("Q{}", tr.quarter),
                pounds(tr.amount_pence),
                if tr.assessed {
                    pounds(tr.earned_pence)
                } else {
                    "not assessed".to_string()
                },
                if tr.assessed {
                    pounds(tr.forfeited_pence)
                } else {
                    "-".to_string()
                },
                if tr.failed_conditions.is_empty() {
                    "-".to_string()
                } else {
                    tr.failed_conditions.join(", ")
                },
            ]);
        }
        if !f.tranches.is_empty() {
            out.push_str(&format!("{tranches}\n"));
        }
    }
    if let Some(o) = &r.operational {
        let mut t = table(
            &[
                "operational",
                "baseline → now",
                "growth",
                "rest of the country",
                "rest is",
            ],
            1,
        );
        t.add_row(growth_row(
            "emergency admissions",
            o.emergency_admissions.as_ref(),
        ));
        t.add_row(growth_row(
            "emergency bed days",
            o.emergency_bed_days.as_ref(),
        ));
        t.add_row(vec![
            "A&E within four hours".to_string(),
            String::new(),
            o.ae_four_hour
                .as_ref()
                .map_or("-".to_string(), |a| percent(i64::from(a.performance_bp))),
            String::new(),
            String::new(),
        ]);
        out.push_str(&format!("{t}\n"));
    }
    for missing in &r.missing {
        out.push_str(&format!("missing: {missing}\n"));
    }
    out
}

fn ranking_text(r: &pb::RankingReport) -> String {
    let measure = pb::Measure::try_from(r.measure).map_or("?", |m| m.as_str_name());
    let mut out = format!(
        "{measure}, {} Q{} ({} is better)\n",
        year_text(r.year),
        r.quarter,
        if r.higher_is_better {
            "higher"
        } else {
            "lower"
        }
    );
    let mut t = table(&["rank", "system", "value"], 2);
    for ranked in &r.ranked {
        let value = match ranked.value {
            Some(pb::ranked::Value::ValuePence(p)) => pounds(p),
            Some(pb::ranked::Value::ValueBp(bp)) => percent(bp),
            None => "-".to_string(),
        };
        t.add_row(vec![ranked.rank.to_string(), ranked.system.clone(), value]);
    }
    out.push_str(&format!("{t}\n"));
    if !r.unranked.is_empty() {
        out.push_str(&format!(
            "not ranked (no figure): {}\n",
            r.unranked.join(", ")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn growth_percentages_are_exact() {
        assert_eq!(percent(260), "2.60%");
        assert_eq!(percent(-5), "-0.05%");
        assert_eq!(percent(490), "4.90%");
    }

    #[test]
    fn a_performance_shows_growth_beside_the_rest_of_the_country() {
        let growth = |baseline, current, growth_bp| pb::Growth {
            current,
            baseline,
            growth_bp,
        };
        let report = pb::PerformanceReport {
            system: "kav".to_string(),
            name: "Kingsmere".to_string(),
            year: 2019,
            quarter: 2,
            baseline_year: 2018,
            operational: Some(pb::Operational {
                emergency_admissions: Some(pb::CountComparison {
                    system: Some(growth(10_000, 10_260, 260)),
                    rest_of_country: Some(growth(20_000, 20_980, 490)),
                    rest_systems: vec!["nor".to_string(), "wes".to_string()],
                }),
                ..pb::Operational::default()
            }),
            ..pb::PerformanceReport::default()
        };
        let text = performance_text(&report);
        assert!(text.contains("2.60%"), "{text}");
        assert!(text.contains("4.90%"), "{text}");
        assert!(text.contains("nor, wes"), "{text}");
    }
}
