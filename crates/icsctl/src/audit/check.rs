//! `icsctl audit check-return --seq S [--file EXPORTED]`: proves a filed return is what the
//! log said when it was taken — or shows what differs.
//!
//! The event at global sequence `S` must be a `system.return_filed`: it names a report (its
//! kind and options), the year and month it covers and the sequence it was taken at. The log
//! is replayed from its first event to that sequence with the domain's position arithmetic,
//! the same report is taken, and its fingerprint compared with the one filed. A return filed
//! by a member is of the report as that member is shown it — positiond limits a member's
//! position and contract statement to what concerns it ([`AnyReport::limit_to`]) — so the
//! replay is limited the same way (`icsctl audit replay --as-member` exports that view). Exit
//! status 0 when they are equal, 1 when they are not, 2 when the check could not be made.
//!
//! With `--file` (the report as filed, exported by `icsctl audit replay --export`), the file's
//! fingerprint — recomputed from its content — is first compared with the one filed; then,
//! if the file and the replay differ, what differs is listed field by field, rows named by
//! their member, contract, fund or budget (`members[KHFT].figures.actual_ytd_pence`), amounts
//! in pounds — for a finance team to read.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use domain::Event;
use domain::position::{AnyReport, AsOf};
use domain::system::{FiledReturn, Filer, SystemEvent};
use serde_json::{Value, json};

use super::{LogArgs, Until, export, fold, hex32, source::Log};
use crate::Global;

#[derive(Clone, Debug, Args)]
pub struct CheckReturn {
    /// Global sequence of the filed return (its system.return_filed event).
    #[arg(long)]
    pub seq: u64,
    /// The report that was filed, as exported by `icsctl audit replay --export`: checked
    /// against the fingerprint filed, and compared with the replay field by field.
    #[arg(long)]
    pub file: Option<PathBuf>,
    #[command(flatten)]
    pub log: LogArgs,
}

/// One difference between the filed report and the replay.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Difference {
    /// Where: `control_total.actual_ytd_pence`, `members[KHFT].figures.plan_ytd_pence`.
    pub path: String,
    /// The value in the filed report and in the replay, as people read them; `None` where
    /// the row or field is only on the other side.
    pub filed: Option<String>,
    pub replay: Option<String>,
}

pub async fn run(global: &Global, args: CheckReturn) -> anyhow::Result<()> {
    let mut log = Log::open(global, args.log.data_dir.as_deref()).await?;
    let recorded = log.get(args.seq).await?;
    let Event::System(SystemEvent::ReturnFiled(filed)) = &recorded.event else {
        anyhow::bail!(
            "event {} is a {}, not a filed return (system.return_filed)",
            args.seq,
            recorded.event_type
        );
    };
    let filed = filed.clone();
    anyhow::ensure!(
        filed.as_of_sequence >= 1 && filed.as_of_sequence < args.seq,
        "the return filed at sequence {} names sequence {}, which is not before it",
        args.seq,
        filed.as_of_sequence
    );
    let (projection, folded) = fold(&mut log, Until::Sequence(filed.as_of_sequence)).await?;
    let mut replay = projection
        .at(AsOf::Sequence(filed.as_of_sequence))
        .and_then(|s| s.report(filed.report, filed.period.year, filed.period.month))
        .map_err(|e| anyhow::anyhow!("{}: {e}", filed.report))?;
    // A member files the report as it is shown it: limited to what concerns it.
    if let Filer::Member(member) = filed.filer {
        replay.limit_to(member);
    }
    let replayed = replay
        .fingerprint()
        .context("the replayed report has no canonical bytes")?;
    let file = args
        .file
        .as_ref()
        .map(|path| export::read(path).map(|exported| (path.clone(), exported)))
        .transpose()?;
    let differences = match &file {
        Some((_, exported)) if exported.report.kind() == replay.kind() => {
            differences(&exported.report, &replay)?
        }
        _ => Vec::new(),
    };
    let outcome = Outcome {
        sequence: args.seq,
        filed: &filed,
        actor: &recorded.actor,
        replayed,
        folded,
        source: log.describe(),
        file: file.as_ref().map(|(path, exported)| (path, exported)),
        differences: &differences,
    };
    if global.json {
        println!("{}", serde_json::to_string_pretty(&outcome.json())?);
    } else {
        print!("{}", outcome.text());
    }
    match outcome.refutation() {
        None => Ok(()),
        Some(reason) => Err(super::refuted(reason)),
    }
}

struct Outcome<'a> {
    sequence: u64,
    filed: &'a FiledReturn,
    actor: &'a str,
    replayed: [u8; 32],
    folded: u64,
    source: String,
    file: Option<(&'a PathBuf, &'a export::Exported)>,
    differences: &'a [Difference],
}

impl Outcome<'_> {
    fn replay_matches(&self) -> bool {
        self.replayed == self.filed.fingerprint
    }

    fn file_matches(&self) -> Option<bool> {
        self.file
            .map(|(_, exported)| exported.fingerprint == self.filed.fingerprint)
    }

    fn matches(&self) -> bool {
        self.refutation().is_none()
    }

    /// Why the check fails (the error, exit status 1); `None` when it passes. The return
    /// filed can match the log while the file given is not that return (it was changed after
    /// it was filed): the error says which.
    fn refutation(&self) -> Option<String> {
        if !self.replay_matches() {
            return Some(format!(
                "the return filed at sequence {} does not match the log",
                self.sequence
            ));
        }
        match (self.file, self.file_matches()) {
            (Some((path, _)), Some(false)) => Some(format!(
                "{} is not the return filed at sequence {} (the return filed matches the log; this file does not)",
                path.display(),
                self.sequence
            )),
            _ => None,
        }
    }

    fn json(&self) -> Value {
        let file = self.file.map(|(path, exported)| {
            json!({
                "path": path.display().to_string(),
                "fingerprint": hex32(&exported.fingerprint),
                "as_exported": exported.is_as_exported(),
                "report": exported.report.kind().to_string(),
                "matches_filed": exported.fingerprint == self.filed.fingerprint,
            })
        });
        json!({
            "sequence": self.sequence,
            "filed_by": self.filed.filer.to_string(),
            "actor": self.actor,
            "report": self.filed.report.to_string(),
            "period": self.filed.period.to_string(),
            "as_of_sequence": self.filed.as_of_sequence,
            "filed_fingerprint": hex32(&self.filed.fingerprint),
            "replay_fingerprint": hex32(&self.replayed),
            "events_replayed": self.folded,
            "matches": self.matches(),
            "file": file,
            "differences": self.differences.iter().map(|d| json!({
                "where": d.path, "filed": d.filed, "replay": d.replay,
            })).collect::<Vec<_>>(),
        })
    }

    fn text(&self) -> String {
        let f = self.filed;
        let mut out = format!(
            "return filed at sequence {} by {} (actor {}): {} for {}, taken at sequence {}\n",
            self.sequence, f.filer, self.actor, f.report, f.period, f.as_of_sequence
        );
        out += &format!("  fingerprint filed     {}\n", hex32(&f.fingerprint));
        out += &format!(
            "  fingerprint replayed  {}  ({} events from {}{})\n",
            hex32(&self.replayed),
            self.folded,
            self.source,
            match f.filer {
                Filer::Member(member) => format!("; the report as {member} is shown it"),
                Filer::System => String::new(),
            }
        );
        if let Some((path, exported)) = self.file {
            out += &format!(
                "  fingerprint of {}  {}\n",
                path.display(),
                hex32(&exported.fingerprint)
            );
            if exported.fingerprint == f.fingerprint {
                out += "the file is the report that was filed\n";
            } else {
                out += "the file is NOT the report that was filed: its fingerprint differs\n";
            }
            if !exported.is_as_exported() {
                out += "the file's content does not give the fingerprint it states: it was changed after it was exported\n";
            }
            if exported.report.kind() != f.report {
                out += &format!(
                    "the file holds a {} report; the return is a {}\n",
                    exported.report.kind(),
                    f.report
                );
            }
        }
        if self.replay_matches() && self.file_matches() == Some(false) {
            out += &format!(
                "the filed return MATCHES the {} the log gives at sequence {}; the file given is NOT that return\n",
                f.report, f.as_of_sequence
            );
        } else if self.replay_matches() {
            out += &format!(
                "MATCHES: the filed return is the {} the log gives at sequence {}\n",
                f.report, f.as_of_sequence
            );
        } else {
            out += &format!(
                "DOES NOT MATCH: the log at sequence {} gives a different {} from the one filed\n",
                f.as_of_sequence, f.report
            );
        }
        if !self.differences.is_empty() {
            out += "what differs between the file and the replay:\n";
            let mut table = Table::new();
            table.load_style(UTF8_FULL_CONDENSED).set_header(vec![
                "where",
                "in the file",
                "in the replay",
            ]);
            for d in self.differences {
                let side = |value: &Option<String>| {
                    value.clone().unwrap_or_else(|| "(not there)".to_string())
                };
                table.add_row(vec![d.path.clone(), side(&d.filed), side(&d.replay)]);
            }
            out += &format!("{table}\n");
        } else if self.file.is_none() && !self.replay_matches() {
            out += "give the report that was filed with --file to see what differs\n";
        }
        out
    }
}

/// What differs between two reports of the same kind, field by field, on the messages
/// positiond serves (so fields carry their units: `_pence`, `_bp`). The fingerprint itself is
/// left out: it differs whenever anything else does.
pub fn differences(filed: &AnyReport, replay: &AnyReport) -> anyhow::Result<Vec<Difference>> {
    let value = |report: &AnyReport| -> anyhow::Result<Value> {
        let proto = api::report::any_report_to_proto(report)
            .context("the report has no canonical bytes")?;
        Ok(match proto {
            api::report::AnyReportProto::Position(r) => serde_json::to_value(r)?,
            api::report::AnyReportProto::Consolidation(r) => serde_json::to_value(r)?,
            api::report::AnyReportProto::PooledBudgets(r) => serde_json::to_value(r)?,
            api::report::AnyReportProto::Contracts(r) => serde_json::to_value(r)?,
            api::report::AnyReportProto::Funds(r) => serde_json::to_value(r)?,
            api::report::AnyReportProto::AgreementOfBalances(r) => serde_json::to_value(r)?,
            api::report::AnyReportProto::Adjustments(r) => serde_json::to_value(r)?,
        })
    };
    let mut out = Vec::new();
    diff_values("", "", &value(filed)?, &value(replay)?, &mut out);
    out.retain(|d| d.path != "basis.fingerprint");
    Ok(out)
}

/// Walks two JSON values, recording leaves that differ. `key` is the field name of the value
/// (for units), `path` where it is.
fn diff_values(path: &str, key: &str, filed: &Value, replay: &Value, out: &mut Vec<Difference>) {
    match (filed, replay) {
        (Value::Object(a), Value::Object(b)) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let at = join(path, k);
                match (a.get(k), b.get(k)) {
                    (Some(x), Some(y)) => diff_values(&at, k, x, y, out),
                    (x, y) => out.push(Difference {
                        path: at,
                        filed: x.map(|v| show(k, v)),
                        replay: y.map(|v| show(k, v)),
                    }),
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => diff_rows(path, key, a, b, out),
        (x, y) if x != y => out.push(Difference {
            path: path.to_string(),
            filed: Some(show(key, x)),
            replay: Some(show(key, y)),
        }),
        _ => {}
    }
}

/// Rows are matched by what names them (member, contract, …) where every row of both lists
/// has a distinct name, and by position otherwise.
fn diff_rows(path: &str, key: &str, filed: &[Value], replay: &[Value], out: &mut Vec<Difference>) {
    let named = |rows: &[Value]| -> Option<Vec<String>> {
        let names: Option<Vec<String>> = rows.iter().map(row_name).collect();
        let names = names?;
        let mut unique = names.clone();
        unique.sort();
        unique.dedup();
        (unique.len() == names.len()).then_some(names)
    };
    if let (Some(a), Some(b)) = (named(filed), named(replay)) {
        for (name, row) in a.iter().zip(filed) {
            let at = format!("{path}[{name}]");
            match b.iter().position(|n| n == name) {
                Some(i) => diff_values(&at, key, row, &replay[i], out),
                None => out.push(Difference {
                    path: at,
                    filed: Some("a row".to_string()),
                    replay: None,
                }),
            }
        }
        for (name, _) in b.iter().zip(replay).filter(|(n, _)| !a.contains(n)) {
            out.push(Difference {
                path: format!("{path}[{name}]"),
                filed: None,
                replay: Some("a row".to_string()),
            });
        }
        return;
    }
    for i in 0..filed.len().max(replay.len()) {
        let at = format!("{path}[{i}]");
        match (filed.get(i), replay.get(i)) {
            (Some(x), Some(y)) => diff_values(&at, key, x, y, out),
            (x, y) => out.push(Difference {
                path: at,
                filed: x.map(|v| show(key, v)),
                replay: y.map(|v| show(key, v)),
            }),
        }
    }
}

/// What names a row of a report: a line of the Agreement of Balances by its pair and measure,
/// an elimination by its pair, anything else by its member, contract, fund, budget, scheme,
/// condition, quarter or sequence.
fn row_name(row: &Value) -> Option<String> {
    let field = |name: &str| -> Option<String> {
        match row.get(name)? {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    };
    if let (Some(creditor), Some(debtor), Some(measure)) =
        (field("creditor"), field("debtor"), row.get("measure"))
    {
        let measure = match measure.as_i64() {
            Some(1) => "income/expenditure",
            Some(2) => "receivables/payables",
            _ => "?",
        };
        return Some(format!("{creditor} from {debtor}, {measure}"));
    }
    if let (Some(a), Some(b)) = (field("a"), field("b")) {
        return Some(format!("{a}/{b}"));
    }
    [
        "member",
        "contract",
        "fund",
        "budget",
        "scheme",
        "condition",
        "quarter",
        "sequence",
    ]
    .iter()
    .find_map(|name| field(name))
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// A value as people read it: pounds for `_pence`, percentages for `_bp`, rows as "a row".
fn show(key: &str, value: &Value) -> String {
    match value {
        Value::Number(n) if key.ends_with("_pence") => n.as_i64().map_or_else(
            || n.to_string(),
            |p| crate::money::pounds(p).trim().to_string(),
        ),
        Value::Number(n) if key.ends_with("_bp") => n.as_u64().map_or_else(
            || n.to_string(),
            |bp| format!("{}.{:02}%", bp / 100, bp % 100),
        ),
        Value::String(s) => s.clone(),
        Value::Null => "(none)".to_string(),
        Value::Object(_) | Value::Array(_) => "a row".to_string(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::tests::{demo, every_kind};
    use domain::position::ReportKind;
    use domain::{FinancialYear, Month, Pence};

    fn report(kind: ReportKind, month: u32) -> AnyReport {
        let (_, projection) = demo();
        projection
            .at(AsOf::Latest)
            .and_then(|s| {
                s.report(
                    kind,
                    FinancialYear::new(2018).expect("year"),
                    Month::new(month).expect("month"),
                )
            })
            .expect("report")
    }

    #[test]
    fn a_report_does_not_differ_from_itself() {
        for kind in every_kind() {
            let r = report(kind, 12);
            assert_eq!(differences(&r, &r).expect("compares"), vec![], "{kind}");
        }
    }

    #[test]
    fn a_changed_figure_is_named_by_its_row_and_shown_in_pounds() {
        let replay = report(ReportKind::Position, 12);
        let AnyReport::Position(mut filed) = replay.clone() else {
            panic!("a position report");
        };
        let khft = filed
            .members
            .iter_mut()
            .find(|m| m.member.as_str() == "KHFT")
            .expect("KHFT");
        let was = khft.figures.actual_ytd;
        khft.figures.actual_ytd = Pence::new(was.get() + 8_000_000);
        filed.control_total.plan_ytd = Pence::new(-1);
        let found = differences(&AnyReport::Position(filed), &replay).expect("compares");
        assert_eq!(
            found,
            vec![
                Difference {
                    path: "control_total.plan_ytd_pence".to_string(),
                    filed: Some("(0.01)".to_string()),
                    replay: Some("(7,200,000.00)".to_string()),
                },
                Difference {
                    path: "members[KHFT].figures.actual_ytd_pence".to_string(),
                    filed: Some("(5,200,000.00)".to_string()),
                    replay: Some("(5,280,000.00)".to_string()),
                },
            ]
        );
    }

    #[test]
    fn rows_only_on_one_side_and_a_different_basis_are_listed() {
        let replay = report(ReportKind::Funds, 12);
        let earlier = report(ReportKind::Funds, 6);
        let found = differences(&earlier, &replay).expect("compares");
        assert!(
            found.iter().any(|d| d.path == "basis.month"
                && d.filed.as_deref() == Some("6")
                && d.replay.as_deref() == Some("12")),
            "{found:?}"
        );
        assert!(
            found
                .iter()
                .any(|d| d.path.starts_with("funds[SSF].tranches[")),
            "{found:?}"
        );
        let AnyReport::Contracts(mut fewer) = report(ReportKind::Contracts, 12) else {
            panic!("contracts");
        };
        let dropped = fewer.contracts.remove(0).contract;
        let found = differences(
            &AnyReport::Contracts(fewer),
            &report(ReportKind::Contracts, 12),
        )
        .expect("compares");
        assert_eq!(
            found,
            vec![Difference {
                path: format!("contracts[{dropped}]"),
                filed: None,
                replay: Some("a row".to_string()),
            }]
        );
    }

    /// The three verdicts: all agree; the file was changed after it was filed (the filed
    /// return still matches the log); the filed return does not match the log.
    #[test]
    fn the_verdict_names_what_does_not_match() {
        let replay = report(ReportKind::Position, 12);
        let replayed = replay.fingerprint().expect("fingerprint");
        let AnyReport::Position(mut changed) = replay.clone() else {
            panic!("a position report");
        };
        changed.control_total.plan_ytd = Pence::new(-1);
        let changed = AnyReport::Position(changed);
        let exported = |report: &AnyReport| export::Exported {
            report: report.clone(),
            fingerprint: report.fingerprint().expect("fingerprint"),
            stated: report.fingerprint().ok(),
        };
        let filed = |fingerprint| FiledReturn {
            filer: Filer::System,
            report: ReportKind::Position,
            period: FinancialYear::new(2018)
                .expect("year")
                .period(Month::new(12).expect("month")),
            as_of_sequence: 383,
            fingerprint,
        };
        let path = PathBuf::from("position-m12.json");
        let verdict = |filed: &FiledReturn, file: &export::Exported| {
            let outcome = Outcome {
                sequence: 384,
                filed,
                actor: "kav-system-finance",
                replayed,
                folded: 383,
                source: "test".to_string(),
                file: Some((&path, file)),
                differences: &[],
            };
            (outcome.refutation(), outcome.text())
        };

        let as_filed = filed(replayed);
        let (refuted, text) = verdict(&as_filed, &exported(&replay));
        assert_eq!(refuted, None);
        assert!(
            text.contains("\nMATCHES: the filed return is the position"),
            "{text}"
        );

        let (refuted, text) = verdict(&as_filed, &exported(&changed));
        let altered = refuted.expect("refuted");
        assert!(
            altered.starts_with("position-m12.json is not the return filed at sequence 384")
                && altered.contains("the return filed matches the log"),
            "{altered}"
        );
        assert!(
            text.contains("the filed return MATCHES the position the log gives at sequence 383; the file given is NOT that return")
                && !text.contains("\nMATCHES:"),
            "{text}"
        );

        let wrong = filed(changed.fingerprint().expect("fingerprint"));
        let (refuted, text) = verdict(&wrong, &exported(&changed));
        assert_eq!(
            refuted.as_deref(),
            Some("the return filed at sequence 384 does not match the log")
        );
        assert!(text.contains("DOES NOT MATCH"), "{text}");
    }

    #[test]
    fn rows_without_distinct_names_are_compared_by_position() {
        let mut out = Vec::new();
        diff_rows(
            "xs",
            "xs",
            &[json!({"v_pence": 1}), json!({"v_pence": 2})],
            &[json!({"v_pence": 1})],
            &mut out,
        );
        assert_eq!(
            out,
            vec![Difference {
                path: "xs[1]".to_string(),
                filed: Some("a row".to_string()),
                replay: None,
            }]
        );
        assert_eq!(show("rate_bp", &json!(250)), "2.50%");
        assert_eq!(show("amount_pence", &json!(-150)), "(1.50)");
        assert_eq!(show("member", &json!("KHFT")), "KHFT");
    }
}
