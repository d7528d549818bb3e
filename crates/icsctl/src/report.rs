//! Reports from positiond: the position by member, consolidation, pooled budgets, contracts,
//! sustainability funds, the Agreement of Balances and adjustments — as tables for finance
//! teams (pounds with thousands separators, negatives in brackets, columns aligned on the
//! last digit), `--csv` for spreadsheets (plain pounds, `-1234.56`), `--json` for scripts
//! (the protobuf message; amounts in pence).

use anyhow::Context;
use api::pb::{MemberKind, Period};
use api::position_pb as pb;
use api::position_pb::position_service_client::PositionServiceClient;
use clap::{Args, Subcommand, ValueEnum};
use comfy_table::{CellAlignment, Table, presets::UTF8_FULL_CONDENSED};

use crate::Global;
use crate::money::pounds;

/// The question every report answers.
#[derive(Clone, Debug, Args)]
pub struct ReportArgs {
    /// Financial year: `2018` or `2018/19`.
    #[arg(long, value_parser = crate::parse::year)]
    pub year: domain::FinancialYear,
    /// Month of the financial year, 1 (April) ..= 12 (March), or `M1` ..= `M12`: figures are
    /// year to date.
    #[arg(long, default_value = "12", value_parser = month)]
    pub month: domain::Month,
    /// Answer as the log stood at a global sequence (`1234`) or at a moment of transaction
    /// time (RFC 3339: `2019-04-30T12:00:00Z`).
    #[arg(long, value_parser = as_of)]
    pub as_of: Option<pb::AsOf>,
    /// Print CSV (pounds without separators) instead of tables.
    #[arg(long)]
    pub csv: bool,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Scope {
    /// The NHS bodies counted in the control total.
    Nhs,
    /// Every member, with the local authority and PCNs.
    All,
}

#[derive(Debug, Subcommand)]
pub enum ReportCmd {
    /// Where each member and the system stand against the control total (year to date), with
    /// the wider ICS beside it.
    Position(ReportArgs),
    /// Gross income and expenditure, eliminations between members, consolidated figures.
    Consolidation {
        #[command(flatten)]
        args: ReportArgs,
        #[arg(long, value_enum, default_value = "nhs")]
        scope: Scope,
    },
    /// Pooled budgets: contributions, spend by scheme, variance, risk-share settlement.
    Budget(ReportArgs),
    /// Contracts, the same figures from the commissioner's and the provider's side.
    Contract(ReportArgs),
    /// Sustainability funds: each quarter's tests, earned and forfeited.
    Fund(ReportArgs),
    /// Agreement of Balances: the ledger against what each side's return states.
    Aob {
        #[command(flatten)]
        args: ReportArgs,
        #[arg(long, value_enum, default_value = "nhs")]
        scope: Scope,
        /// Flag receivables/payables differences over this many pounds (default 300,000).
        #[arg(long, value_parser = crate::parse::pounds)]
        balance_threshold: Option<domain::Pence>,
        /// Flag income/expenditure differences over this many pounds (default 3,000,000).
        #[arg(long, value_parser = crate::parse::pounds)]
        income_threshold: Option<domain::Pence>,
    },
    /// Corrections to earlier periods: posted this year, and naming this year.
    Adjustments(ReportArgs),
    /// How far positiond has folded the log, against ledgerd's head.
    PositionStatus {
        /// Wait (up to --timeout-s) until positiond has folded the ledger's head.
        #[arg(long)]
        wait: bool,
        #[arg(long, default_value_t = 60)]
        timeout_s: u64,
    },
}

pub(crate) fn month(text: &str) -> Result<domain::Month, String> {
    let number = text.trim_start_matches(['M', 'm']);
    let n: u32 = number
        .parse()
        .map_err(|_| format!("'{text}' is not a month 1..12 (or M1..M12)"))?;
    domain::Month::new(n).map_err(|e| e.to_string())
}

fn as_of(text: &str) -> Result<pb::AsOf, String> {
    use pb::as_of::At;
    let at = if let Ok(sequence) = text.parse::<u64>() {
        At::Sequence(sequence)
    } else {
        let time: jiff::Timestamp = text.parse().map_err(|_| {
            format!("'{text}' is neither a sequence number nor an RFC 3339 time like 2019-04-30T12:00:00Z")
        })?;
        At::RecordedAtUs(time.as_microsecond())
    };
    Ok(pb::AsOf { at: Some(at) })
}

impl ReportArgs {
    fn request(&self) -> pb::ReportRequest {
        pb::ReportRequest {
            year: u32::from(self.year.start_year()),
            month: u32::from(self.month.number()),
            as_of: self.as_of,
        }
    }
}

pub async fn connect(
    global: &Global,
) -> anyhow::Result<PositionServiceClient<tonic::transport::Channel>> {
    let channel = crate::channel_to(global, &global.position_server)
        .await
        .with_context(|| format!("connecting to positiond at {}", global.position_server))?;
    Ok(PositionServiceClient::new(channel).max_decoding_message_size(64 * 1024 * 1024))
}

pub async fn run(global: &Global, command: ReportCmd) -> anyhow::Result<()> {
    if let ReportCmd::PositionStatus { wait, timeout_s } = command {
        return position_status(global, wait, std::time::Duration::from_secs(timeout_s)).await;
    }
    let mut client = connect(global).await?;
    let status = crate::output::status_error;
    match command {
        ReportCmd::Position(args) => {
            let report = client
                .get_position(crate::request(global, args.request())?)
                .await
                .map_err(status)?
                .into_inner();
            print(global, args.csv, &report, position_table, position_csv)
        }
        ReportCmd::Consolidation { args, scope } => {
            let request = pb::ConsolidationRequest {
                report: Some(args.request()),
                scope: match scope {
                    Scope::Nhs => pb::ConsolidationScope::ControlTotal,
                    Scope::All => pb::ConsolidationScope::WiderIcs,
                }
                .into(),
            };
            let report = client
                .get_consolidation(crate::request(global, request)?)
                .await
                .map_err(status)?
                .into_inner();
            print(
                global,
                args.csv,
                &report,
                consolidation_table,
                consolidation_csv,
            )
        }
        ReportCmd::Budget(args) => {
            let report = client
                .get_pooled_budgets(crate::request(global, args.request())?)
                .await
                .map_err(status)?
                .into_inner();
            print(global, args.csv, &report, budget_table, budget_csv)
        }
        ReportCmd::Contract(args) => {
            let report = client
                .get_contracts(crate::request(global, args.request())?)
                .await
                .map_err(status)?
                .into_inner();
            print(global, args.csv, &report, contract_table, contract_csv)
        }
        ReportCmd::Fund(args) => {
            let report = client
                .get_funds(crate::request(global, args.request())?)
                .await
                .map_err(status)?
                .into_inner();
            print(global, args.csv, &report, fund_table, fund_csv)
        }
        ReportCmd::Aob {
            args,
            scope,
            balance_threshold,
            income_threshold,
        } => {
            let request = pb::AgreementOfBalancesRequest {
                report: Some(args.request()),
                scope: match scope {
                    Scope::Nhs => pb::AobScope::NhsBodies,
                    Scope::All => pb::AobScope::AllMembers,
                }
                .into(),
                receivables_payables_threshold_pence: balance_threshold.map(|p| p.get()),
                income_expenditure_threshold_pence: income_threshold.map(|p| p.get()),
            };
            let report = client
                .get_agreement_of_balances(crate::request(global, request)?)
                .await
                .map_err(status)?
                .into_inner();
            print(global, args.csv, &report, aob_table, aob_csv)
        }
        ReportCmd::Adjustments(args) => {
            let report = client
                .get_adjustments(crate::request(global, args.request())?)
                .await
                .map_err(status)?
                .into_inner();
            print(
                global,
                args.csv,
                &report,
                adjustments_table,
                adjustments_csv,
            )
        }
        ReportCmd::PositionStatus { .. } => Ok(()),
    }
}

/// positiond's folded sequence and hash beside ledgerd's head; with `wait`, polls until they
/// agree. Fails unless they agree.
async fn position_status(
    global: &Global,
    wait: bool,
    timeout: std::time::Duration,
) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let mut ledger = crate::connect(global).await?;
    let head = ledger
        .head(crate::request(global, api::pb::HeadRequest {})?)
        .await
        .map_err(crate::output::status_error)?
        .into_inner();
    let status = loop {
        // positiond may still be starting: keep trying to connect while waiting.
        let status = match connect(global).await {
            Ok(mut client) => client
                .get_status(crate::request(global, pb::StatusRequest {})?)
                .await
                .map(tonic::Response::into_inner)
                .map_err(crate::output::status_error),
            Err(error) => Err(error),
        };
        let done = status.as_ref().is_ok_and(|s| s.sequence >= head.sequence);
        if done || !wait || started.elapsed() > timeout {
            break status?;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let agrees = status.sequence == head.sequence && status.hash == head.hash;
    if global.json {
        println!(
            "{}",
            serde_json::json!({
                "system": status.system, "sequence": status.sequence, "hash": hex::encode(&status.hash),
                "ledger_sequence": head.sequence, "ledger_hash": hex::encode(&head.hash), "agrees": agrees,
                "parked": status.parked,
            })
        );
    } else {
        let mut t = table(&["positiond", ""], 1);
        t.add_row(vec!["system".to_string(), status.system.clone()]);
        t.add_row(vec![
            "folded to sequence".to_string(),
            status.sequence.to_string(),
        ]);
        t.add_row(vec!["its hash".to_string(), hex::encode(&status.hash)]);
        t.add_row(vec![
            "agrees with the ledger head".to_string(),
            if agrees { "yes" } else { "NO" }.to_string(),
        ]);
        t.add_row(vec![
            "messages from NATS parked".to_string(),
            status.parked.to_string(),
        ]);
        println!("{t}");
    }
    anyhow::ensure!(
        agrees,
        "positiond has folded to sequence {}, the ledger's head is {}",
        status.sequence,
        head.sequence
    );
    Ok(())
}

/// Prints `report` as JSON, CSV or tables.
fn print<R: serde::Serialize>(
    global: &Global,
    as_csv: bool,
    report: &R,
    tables: fn(&R) -> String,
    csv: fn(&R) -> Csv,
) -> anyhow::Result<()> {
    if global.json {
        println!("{}", serde_json::to_string_pretty(report)?);
    } else if as_csv {
        print!("{}", csv(report).text);
    } else {
        print!("{}", tables(report));
    }
    Ok(())
}

/// Prints any report's message exactly as the command for its kind prints positiond's
/// (`icsctl position`, `icsctl fund`, …): the audit replay's output is byte for byte theirs.
pub fn print_any(
    global: &Global,
    as_csv: bool,
    report: &api::report::AnyReportProto,
) -> anyhow::Result<()> {
    use api::report::AnyReportProto as R;
    match report {
        R::Position(r) => print(global, as_csv, r, position_table, position_csv),
        R::Consolidation(r) => print(global, as_csv, r, consolidation_table, consolidation_csv),
        R::PooledBudgets(r) => print(global, as_csv, r, budget_table, budget_csv),
        R::Contracts(r) => print(global, as_csv, r, contract_table, contract_csv),
        R::Funds(r) => print(global, as_csv, r, fund_table, fund_csv),
        R::AgreementOfBalances(r) => print(global, as_csv, r, aob_table, aob_csv),
        R::Adjustments(r) => print(global, as_csv, r, adjustments_table, adjustments_csv),
    }
}

// ---------------------------------------------------------------------------------------------
// Shared pieces
// ---------------------------------------------------------------------------------------------

/// The lines above every report: what it is of, for when, and as of what.
fn heading(title: &str, basis: Option<&pb::Basis>) -> String {
    let Some(b) = basis else {
        return format!("{title}\n");
    };
    let year =
        domain::FinancialYear::new(b.year).map_or_else(|_| b.year.to_string(), |y| y.to_string());
    let closed = b.closed_through.map_or_else(
        || "no period closed".to_string(),
        |p| format!("closed through {}", period(p)),
    );
    format!(
        "{title} — {} ({}), {year} M1–M{} year to date\nas recorded at sequence {} ({}); {closed}\nfingerprint {}\n",
        b.system_name,
        b.system,
        b.month,
        b.as_of_sequence,
        time(b.as_of_recorded_at_us),
        hex::encode(&b.fingerprint),
    )
}

fn time(recorded_at_us: i64) -> String {
    if recorded_at_us == 0 {
        return "-".to_string();
    }
    jiff::Timestamp::from_microsecond(recorded_at_us)
        .map_or_else(|_| recorded_at_us.to_string(), |t| t.to_string())
}

fn period(p: Period) -> String {
    domain::FinancialYear::new(p.year).map_or_else(
        |_| format!("{}-M{}", p.year, p.month),
        |y| format!("{y}-M{}", p.month),
    )
}

fn opt_period(p: Option<Period>) -> String {
    p.map_or_else(|| "-".to_string(), period)
}

/// `5000` bp → `50.00%`.
fn percent(bp: u32) -> String {
    format!("{}.{:02}%", bp / 100, bp % 100)
}

fn kind(kind: i32) -> &'static str {
    match MemberKind::try_from(kind) {
        Ok(MemberKind::Commissioner) => "commissioner",
        Ok(MemberKind::AcuteTrust) => "acute trust",
        Ok(MemberKind::CommunityTrust) => "community trust",
        Ok(MemberKind::MentalHealthTrust) => "mental health trust",
        Ok(MemberKind::PrimaryCareNetwork) => "PCN",
        Ok(MemberKind::LocalAuthority) => "local authority",
        Ok(MemberKind::Unspecified) | Err(_) => "?",
    }
}

/// A table with a header; columns from `money_from` on are right-aligned.
fn table(header: &[&str], money_from: usize) -> Table {
    let mut table = Table::new();
    table
        .load_style(UTF8_FULL_CONDENSED)
        .set_header(header.to_vec());
    for (i, column) in table.column_iter_mut().enumerate() {
        if i >= money_from {
            column.set_cell_alignment(CellAlignment::Right);
        }
    }
    table
}

fn yes(flag: bool) -> &'static str {
    if flag { "yes" } else { "no" }
}

/// Plain pounds for CSV: `-1234.56`.
fn csv_pounds(pence: i64) -> String {
    let magnitude = i128::from(pence).unsigned_abs();
    let sign = if pence < 0 { "-" } else { "" };
    format!("{sign}{}.{:02}", magnitude / 100, magnitude % 100)
}

/// CSV text, RFC 4180 quoting.
struct Csv {
    text: String,
}

impl Csv {
    fn new(header: &[&str]) -> Self {
        let mut csv = Csv {
            text: String::new(),
        };
        csv.row(header.iter().map(|h| (*h).to_string()));
        csv
    }

    fn row(&mut self, fields: impl IntoIterator<Item = String>) {
        let mut first = true;
        for field in fields {
            if !first {
                self.text.push(',');
            }
            first = false;
            if field.contains([',', '"', '\n', '\r']) {
                self.text.push('"');
                self.text.push_str(&field.replace('"', "\"\""));
                self.text.push('"');
            } else {
                self.text.push_str(&field);
            }
        }
        self.text.push_str("\r\n");
    }
}

// ---------------------------------------------------------------------------------------------
// Position
// ---------------------------------------------------------------------------------------------

const POSITION_COLUMNS: [&str; 8] = [
    "control total",
    "plan YTD",
    "actual YTD",
    "variance",
    "forecast outturn",
    "fund earned",
    "fund forfeited",
    "after fund YTD",
];

fn position_money(f: &pb::PositionFigures) -> [i64; 8] {
    [
        f.plan_annual_pence,
        f.plan_ytd_pence,
        f.actual_ytd_pence,
        f.variance_ytd_pence,
        f.forecast_outturn_pence,
        f.fund_earned_ytd_pence,
        f.fund_forfeited_ytd_pence,
        f.after_fund_ytd_pence,
    ]
}

fn position_row(first: [String; 2], figures: Option<&pb::PositionFigures>) -> Vec<String> {
    let money = figures.map(position_money).unwrap_or_default();
    first.into_iter().chain(money.map(pounds)).collect()
}

fn position_table(report: &pb::PositionReport) -> String {
    let mut header = vec!["member", "name"];
    header.extend(POSITION_COLUMNS);
    let mut t = table(&header, 2);
    let (nhs, others): (Vec<_>, Vec<_>) = report.members.iter().partition(|m| m.in_control_total);
    for m in &nhs {
        t.add_row(position_row(
            [m.member.clone(), m.name.clone()],
            m.figures.as_ref(),
        ));
    }
    t.add_row(position_row(
        [
            "SYSTEM".to_string(),
            "NHS bodies: the system control total".to_string(),
        ],
        report.control_total.as_ref(),
    ));
    for m in &others {
        t.add_row(position_row(
            [
                m.member.clone(),
                format!("{} ({}; outside the control total)", m.name, kind(m.kind)),
            ],
            m.figures.as_ref(),
        ));
    }
    t.add_row(position_row(
        ["WIDER ICS".to_string(), "every member".to_string()],
        report.wider_ics.as_ref(),
    ));
    let mut out = heading("Position", report.basis.as_ref());
    out.push_str(&format!("{t}\n"));
    for m in &report.members {
        if !m.returns_missing.is_empty() {
            let months: Vec<String> = m.returns_missing.iter().map(|n| format!("M{n}")).collect();
            out.push_str(&format!(
                "{}: no return for {} (counted as nothing)\n",
                m.member,
                months.join(", ")
            ));
        }
        if m.plan_revision.is_none() {
            out.push_str(&format!("{}: no plan agreed for the year\n", m.member));
        }
    }
    out
}

fn position_csv(report: &pb::PositionReport) -> Csv {
    let mut header = vec!["member", "name", "in_control_total"];
    header.extend(POSITION_COLUMNS);
    let mut csv = Csv::new(&header);
    let row = |code: String, name: String, in_ct: &str, f: Option<&pb::PositionFigures>| {
        [code, name, in_ct.to_string()]
            .into_iter()
            .chain(f.map(position_money).unwrap_or_default().map(csv_pounds))
            .collect::<Vec<_>>()
    };
    for m in &report.members {
        csv.row(row(
            m.member.clone(),
            m.name.clone(),
            yes(m.in_control_total),
            m.figures.as_ref(),
        ));
    }
    csv.row(row(
        "SYSTEM".into(),
        "system control total".into(),
        "yes",
        report.control_total.as_ref(),
    ));
    csv.row(row(
        "WIDER ICS".into(),
        "every member".into(),
        "no",
        report.wider_ics.as_ref(),
    ));
    csv
}

// ---------------------------------------------------------------------------------------------
// Consolidation
// ---------------------------------------------------------------------------------------------

fn consolidation_table(report: &pb::ConsolidationReport) -> String {
    let mut out = heading("Consolidation", report.basis.as_ref());
    let mut members = table(&["member", "income YTD", "expenditure YTD"], 1);
    for m in &report.members {
        members.add_row(vec![
            m.member.clone(),
            pounds(m.income_ytd_pence),
            pounds(m.expenditure_ytd_pence),
        ]);
    }
    members.add_row(vec![
        "gross".to_string(),
        pounds(report.gross_income_pence),
        pounds(report.gross_expenditure_pence),
    ]);
    members.add_row(vec![
        "less eliminations".to_string(),
        pounds(-report.eliminated_pence),
        pounds(-report.eliminated_pence),
    ]);
    members.add_row(vec![
        "consolidated".to_string(),
        pounds(report.consolidated_income_pence),
        pounds(report.consolidated_expenditure_pence),
    ]);
    out.push_str(&format!("{members}\n"));
    let mut pairs = table(
        &[
            "between",
            "and",
            "a's income from b",
            "b's income from a",
            "eliminated",
        ],
        2,
    );
    for e in &report.eliminations {
        pairs.add_row(vec![
            e.a.clone(),
            e.b.clone(),
            pounds(e.a_income_from_b_pence),
            pounds(e.b_income_from_a_pence),
            pounds(e.amount_pence),
        ]);
    }
    out.push_str(&format!("{pairs}\n"));
    out
}

fn consolidation_csv(report: &pb::ConsolidationReport) -> Csv {
    let mut csv = Csv::new(&["line", "a", "b", "income", "expenditure"]);
    for m in &report.members {
        csv.row([
            "member".into(),
            m.member.clone(),
            String::new(),
            csv_pounds(m.income_ytd_pence),
            csv_pounds(m.expenditure_ytd_pence),
        ]);
    }
    for e in &report.eliminations {
        csv.row([
            "elimination".into(),
            e.a.clone(),
            e.b.clone(),
            csv_pounds(e.amount_pence),
            csv_pounds(e.amount_pence),
        ]);
    }
    csv.row([
        "consolidated".into(),
        String::new(),
        String::new(),
        csv_pounds(report.consolidated_income_pence),
        csv_pounds(report.consolidated_expenditure_pence),
    ]);
    csv
}

// ---------------------------------------------------------------------------------------------
// Pooled budgets
// ---------------------------------------------------------------------------------------------

fn budget_table(report: &pb::PooledBudgetStatement) -> String {
    let mut out = heading("Pooled budgets", report.basis.as_ref());
    for b in &report.budgets {
        let year = domain::FinancialYear::new(b.year)
            .map_or_else(|_| b.year.to_string(), |y| y.to_string());
        out.push_str(&format!(
            "\n{} {} — hosted by {}, {year}{}\n",
            b.budget,
            b.name,
            b.host,
            b.closed_in
                .map_or(String::new(), |p| format!(", closed in {}", period(p)))
        ));
        let mut partners = table(
            &[
                "partner",
                "revenue pledged",
                "ring-fenced pledged",
                "paid to date",
                "unpaid",
                "overspend share",
                "underspend share",
                "risk share",
            ],
            1,
        );
        for p in &b.partners {
            let name = if p.host {
                format!("{} (host)", p.member)
            } else {
                p.member.clone()
            };
            partners.add_row(vec![
                name,
                pounds(p.pledged_revenue_pence),
                pounds(p.pledged_ring_fenced_pence),
                pounds(p.paid_to_date_pence),
                pounds(p.unpaid_pence),
                percent(p.overspend_share_bp),
                percent(p.underspend_share_bp),
                pounds(p.risk_share_pence),
            ]);
        }
        out.push_str(&format!("{partners}\n"));
        let mut schemes = table(
            &[
                "scheme",
                "name",
                "ring-fenced",
                "pledged",
                "spend YTD",
                "variance YTD",
            ],
            3,
        );
        for s in &b.schemes {
            schemes.add_row(vec![
                s.scheme.clone(),
                s.name.clone(),
                yes(s.ring_fenced).to_string(),
                s.pledged_pence.map_or("-".to_string(), pounds),
                pounds(s.spend_ytd_pence),
                s.variance_ytd_pence.map_or("-".to_string(), pounds),
            ]);
        }
        out.push_str(&format!("{schemes}\n"));
        let mut totals = table(&["", "pledged", "spend YTD", "over/(under)spend"], 1);
        totals.add_row(vec![
            "revenue pool (risk shared)".to_string(),
            pounds(b.revenue_pool_ytd_pence),
            pounds(b.revenue_spend_ytd_pence),
            pounds(b.revenue_variance_ytd_pence),
        ]);
        totals.add_row(vec![
            "ring-fenced".to_string(),
            pounds(b.ring_fenced_pledged_pence),
            pounds(b.ring_fenced_spend_ytd_pence),
            "".to_string(),
        ]);
        out.push_str(&format!("{totals}\n"));
        match &b.settlement {
            Some(s) => {
                let split: Vec<String> = s
                    .allocations
                    .iter()
                    .map(|a| format!("{} {}", a.member, pounds(a.amount_pence).trim_end()))
                    .collect();
                let outcome = if s.variance_pence >= 0 {
                    "overspend"
                } else {
                    "underspend"
                };
                out.push_str(&format!(
                    "risk share settled in {}: {outcome} of {} split {}\n",
                    opt_period(s.period),
                    pounds(s.variance_pence.saturating_abs()).trim_end(),
                    split.join(", ")
                ));
            }
            None => out.push_str("risk share not settled\n"),
        }
    }
    out
}

fn budget_csv(report: &pb::PooledBudgetStatement) -> Csv {
    let mut csv = Csv::new(&[
        "budget",
        "line",
        "code",
        "pledged",
        "paid",
        "spend_ytd",
        "risk_share",
    ]);
    for b in &report.budgets {
        for p in &b.partners {
            csv.row([
                b.budget.clone(),
                "partner".into(),
                p.member.clone(),
                csv_pounds(p.pledged_pence),
                csv_pounds(p.paid_to_date_pence),
                String::new(),
                csv_pounds(p.risk_share_pence),
            ]);
        }
        for s in &b.schemes {
            csv.row([
                b.budget.clone(),
                "scheme".into(),
                s.scheme.clone(),
                s.pledged_pence.map_or(String::new(), csv_pounds),
                String::new(),
                csv_pounds(s.spend_ytd_pence),
                String::new(),
            ]);
        }
    }
    csv
}

// ---------------------------------------------------------------------------------------------
// Contracts
// ---------------------------------------------------------------------------------------------

const CONTRACT_COLUMNS: [&str; 12] = [
    "contract",
    "commissioner",
    "provider",
    "model",
    "annual value",
    "value YTD",
    "units YTD",
    "invoiced YTD",
    "paid YTD",
    "outstanding",
    "disputed open",
    "provider receivable = commissioner payable",
];

fn contract_table(report: &pb::ContractStatement) -> String {
    let mut out = heading("Contracts", report.basis.as_ref());
    let mut t = table(&CONTRACT_COLUMNS, 4);
    for c in &report.contracts {
        let commissioner = c.commissioner.clone().unwrap_or_default();
        let provider = c.provider.clone().unwrap_or_default();
        let agreed = if provider.balance_pence == commissioner.balance_pence {
            pounds(provider.balance_pence)
        } else {
            format!(
                "{} ≠ {}",
                pounds(provider.balance_pence),
                pounds(commissioner.balance_pence)
            )
        };
        let model = match c.terminated_in {
            Some(p) => format!("{} (terminated {})", c.model, period(p)),
            None => c.model.clone(),
        };
        t.add_row(vec![
            c.contract.clone(),
            commissioner.member,
            provider.member,
            model,
            pounds(c.annual_value_pence),
            pounds(c.value_ytd_pence),
            c.activity_units_ytd.to_string(),
            pounds(c.invoiced_ytd_pence),
            pounds(c.paid_ytd_pence),
            pounds(c.invoices_outstanding_pence),
            pounds(c.disputes_open_pence),
            agreed,
        ]);
    }
    out.push_str(&format!("{t}\n"));
    for c in &report.contracts {
        if let Some(q) = &c.cquin {
            out.push_str(&format!(
                "{}: CQUIN reconciled in {} at {} achievement: {} of {} earned, {} deducted\n",
                c.contract,
                opt_period(q.period),
                percent(q.achievement_bp),
                pounds(q.earned_pence).trim_end(),
                pounds(q.value_pence).trim_end(),
                pounds(q.deduction_pence).trim_end()
            ));
        }
    }
    out
}

fn contract_csv(report: &pb::ContractStatement) -> Csv {
    let mut csv = Csv::new(&[
        "contract",
        "commissioner",
        "provider",
        "model",
        "annual_value",
        "value_ytd",
        "units_ytd",
        "invoiced_ytd",
        "paid_ytd",
        "outstanding",
        "disputed_open",
        "provider_receivable",
        "commissioner_payable",
    ]);
    for c in &report.contracts {
        let commissioner = c.commissioner.clone().unwrap_or_default();
        let provider = c.provider.clone().unwrap_or_default();
        csv.row([
            c.contract.clone(),
            commissioner.member,
            provider.member,
            c.model.clone(),
            csv_pounds(c.annual_value_pence),
            csv_pounds(c.value_ytd_pence),
            c.activity_units_ytd.to_string(),
            csv_pounds(c.invoiced_ytd_pence),
            csv_pounds(c.paid_ytd_pence),
            csv_pounds(c.invoices_outstanding_pence),
            csv_pounds(c.disputes_open_pence),
            csv_pounds(provider.balance_pence),
            csv_pounds(commissioner.balance_pence),
        ]);
    }
    csv
}

// ---------------------------------------------------------------------------------------------
// Sustainability funds
// ---------------------------------------------------------------------------------------------

/// Whether the condition of `kind` was met in an assessment: `met`, `FAILED` or `-`.
fn outcome(assessment: Option<&pb::TrancheAssessment>, kind: api::pb::ConditionKind) -> String {
    let Some(a) = assessment else {
        return "-".to_string();
    };
    let met: Vec<bool> = a
        .outcomes
        .iter()
        .filter(|o| o.kind == i32::from(kind))
        .map(|o| o.met)
        .collect();
    match met.as_slice() {
        [] => "-".to_string(),
        m if m.iter().all(|x| *x) => "met".to_string(),
        _ => "FAILED".to_string(),
    }
}

fn fund_table(report: &pb::FundStatement) -> String {
    use api::pb::ConditionKind;
    let mut out = heading("Sustainability funds", report.basis.as_ref());
    for f in &report.funds {
        out.push_str(&format!(
            "\n{} {} — {} allocated\n",
            f.fund,
            f.name,
            pounds(f.total_pence).trim_end()
        ));
        let mut t = table(
            &[
                "quarter",
                "tranche",
                "control total YTD",
                "system YTD before fund",
                "finance",
                "A&E",
                "earned",
                "forfeited",
                "system YTD after fund",
                "paid in",
            ],
            1,
        );
        for q in &f.tranches {
            let a = q.assessment.as_ref();
            let ledger = q.ledger_now.unwrap_or_default();
            t.add_row(vec![
                format!("Q{}", q.quarter),
                pounds(q.amount_pence),
                q.ledger_now
                    .as_ref()
                    .map_or("-".to_string(), |_| pounds(ledger.control_total_ytd_pence)),
                q.ledger_now.as_ref().map_or("-".to_string(), |_| {
                    pounds(ledger.system_ytd_before_fund_pence)
                }),
                outcome(a, ConditionKind::SystemFinance),
                outcome(a, ConditionKind::AeFourHour),
                a.map_or("-".to_string(), |a| pounds(a.earned_pence)),
                a.map_or("-".to_string(), |a| pounds(a.forfeited_pence)),
                q.ledger_now.as_ref().map_or("-".to_string(), |_| {
                    pounds(ledger.system_ytd_after_fund_pence)
                }),
                q.paid
                    .as_ref()
                    .map_or("-".to_string(), |p| opt_period(p.period)),
            ]);
        }
        t.add_row(vec![
            "year".to_string(),
            pounds(f.total_pence),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
            pounds(f.earned_pence),
            pounds(f.forfeited_pence),
            String::new(),
            String::new(),
        ]);
        out.push_str(&format!("{t}\n"));
        let mut r = table(
            &[
                "recipient",
                "allocation",
                "earned",
                "forfeited",
                "paid",
                "clawed back",
            ],
            1,
        );
        for p in &f.recipients {
            r.add_row(vec![
                p.member.clone(),
                pounds(p.allocation_pence),
                pounds(p.earned_pence),
                pounds(p.forfeited_pence),
                pounds(p.paid_pence),
                pounds(p.clawed_back_pence),
            ]);
        }
        out.push_str(&format!("{r}\n"));
        for q in &f.tranches {
            if q.assessment
                .as_ref()
                .is_some_and(|a| a.evidence_agrees == Some(false))
            {
                out.push_str(&format!(
                    "Q{}: the evidence recorded at the assessment does not agree with the ledger's own figures\n",
                    q.quarter
                ));
            }
        }
    }
    out
}

fn fund_csv(report: &pb::FundStatement) -> Csv {
    use api::pb::ConditionKind;
    let mut csv = Csv::new(&[
        "fund",
        "quarter",
        "tranche",
        "control_total_ytd",
        "system_ytd_before_fund",
        "finance",
        "ae",
        "earned",
        "forfeited",
        "system_ytd_after_fund",
    ]);
    for f in &report.funds {
        for q in &f.tranches {
            let a = q.assessment.as_ref();
            let ledger = q.ledger_now.as_ref();
            csv.row([
                f.fund.clone(),
                format!("Q{}", q.quarter),
                csv_pounds(q.amount_pence),
                ledger.map_or(String::new(), |l| csv_pounds(l.control_total_ytd_pence)),
                ledger.map_or(String::new(), |l| {
                    csv_pounds(l.system_ytd_before_fund_pence)
                }),
                outcome(a, ConditionKind::SystemFinance),
                outcome(a, ConditionKind::AeFourHour),
                a.map_or(String::new(), |a| csv_pounds(a.earned_pence)),
                a.map_or(String::new(), |a| csv_pounds(a.forfeited_pence)),
                ledger.map_or(String::new(), |l| csv_pounds(l.system_ytd_after_fund_pence)),
            ]);
        }
    }
    csv
}

// ---------------------------------------------------------------------------------------------
// Agreement of Balances
// ---------------------------------------------------------------------------------------------

fn measure(measure: i32) -> &'static str {
    match pb::AobMeasure::try_from(measure) {
        Ok(pb::AobMeasure::IncomeExpenditure) => "income/expenditure",
        Ok(pb::AobMeasure::ReceivablesPayables) => "receivables/payables",
        _ => "?",
    }
}

fn flag(line: &pb::AobLine) -> &'static str {
    match (line.mismatched, line.over_threshold) {
        (_, true) => "OVER THRESHOLD",
        (true, false) => "mismatch",
        (false, false) => "agreed",
    }
}

fn aob_table(report: &pb::AgreementOfBalances) -> String {
    let mut out = heading("Agreement of Balances", report.basis.as_ref());
    out.push_str(&format!(
        "thresholds: receivables/payables {}, income/expenditure {}; {} mismatched, {} over threshold\n",
        pounds(report.receivables_payables_threshold_pence).trim_end(),
        pounds(report.income_expenditure_threshold_pence).trim_end(),
        report.mismatched_lines,
        report.lines_over_threshold
    ));
    let mut t = table(
        &[
            "measure",
            "creditor",
            "debtor",
            "creditor states",
            "debtor states",
            "ledger",
            "difference",
            "",
        ],
        3,
    );
    for l in &report.lines {
        t.add_row(vec![
            measure(l.measure).to_string(),
            l.creditor.clone(),
            l.debtor.clone(),
            pounds(l.creditor_states_pence),
            pounds(l.debtor_states_pence),
            pounds(l.ledger_pence),
            pounds(l.difference_pence),
            flag(l).to_string(),
        ]);
    }
    out.push_str(&format!("{t}\n"));
    for m in &report.returns_missing {
        out.push_str(&format!("{}: no return for M{}\n", m.member, m.month));
    }
    out
}

fn aob_csv(report: &pb::AgreementOfBalances) -> Csv {
    let mut csv = Csv::new(&[
        "measure",
        "creditor",
        "debtor",
        "creditor_states",
        "debtor_states",
        "ledger",
        "difference",
        "threshold",
        "flag",
    ]);
    for l in &report.lines {
        csv.row([
            measure(l.measure).to_string(),
            l.creditor.clone(),
            l.debtor.clone(),
            csv_pounds(l.creditor_states_pence),
            csv_pounds(l.debtor_states_pence),
            csv_pounds(l.ledger_pence),
            csv_pounds(l.difference_pence),
            csv_pounds(l.threshold_pence),
            flag(l).to_string(),
        ]);
    }
    csv
}

// ---------------------------------------------------------------------------------------------
// Adjustments
// ---------------------------------------------------------------------------------------------

fn correction_kind(kind: i32) -> &'static str {
    match pb::CorrectionKind::try_from(kind) {
        Ok(pb::CorrectionKind::Activity) => "activity restated",
        Ok(pb::CorrectionKind::Invoice) => "invoice",
        Ok(pb::CorrectionKind::ContractAdjustment) => "contract adjustment",
        Ok(pb::CorrectionKind::BudgetSpend) => "pooled budget spend",
        _ => "?",
    }
}

fn corrections_table(title: &str, corrections: &[pb::Correction]) -> String {
    if corrections.is_empty() {
        return format!("{title}: none\n");
    }
    let mut t = table(
        &[
            "sequence",
            "stream",
            "kind",
            "posted in",
            "corrects",
            "payer",
            "payee",
            "amount",
            "reason",
        ],
        7,
    );
    for c in corrections {
        t.add_row(vec![
            c.sequence.to_string(),
            c.stream.clone(),
            correction_kind(c.kind).to_string(),
            opt_period(c.posted_in),
            opt_period(c.corrects),
            c.payer.clone().unwrap_or_default(),
            c.payee.clone().unwrap_or_default(),
            pounds(c.amount_pence),
            c.reason.clone().unwrap_or_default(),
        ]);
    }
    format!("{title}\n{t}\n")
}

fn adjustments_table(report: &pb::AdjustmentsReport) -> String {
    let mut out = heading("Adjustments", report.basis.as_ref());
    out.push_str(&corrections_table(
        "posted this year, correcting earlier periods (counted here)",
        &report.posted_this_year,
    ));
    out.push_str(&corrections_table(
        "naming this year's periods (counted where they were posted)",
        &report.naming_this_year,
    ));
    out
}

fn adjustments_csv(report: &pb::AdjustmentsReport) -> Csv {
    let mut csv = Csv::new(&[
        "list",
        "sequence",
        "stream",
        "kind",
        "posted_in",
        "corrects",
        "payer",
        "payee",
        "amount",
        "reason",
    ]);
    for (list, corrections) in [
        ("posted_this_year", &report.posted_this_year),
        ("naming_this_year", &report.naming_this_year),
    ] {
        for c in corrections {
            csv.row([
                list.to_string(),
                c.sequence.to_string(),
                c.stream.clone(),
                correction_kind(c.kind).to_string(),
                opt_period(c.posted_in),
                opt_period(c.corrects),
                c.payer.clone().unwrap_or_default(),
                c.payee.clone().unwrap_or_default(),
                csv_pounds(c.amount_pence),
                c.reason.clone().unwrap_or_default(),
            ]);
        }
    }
    csv
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_pounds_are_plain_and_exact() {
        assert_eq!(csv_pounds(0), "0.00");
        assert_eq!(csv_pounds(-156_000_000), "-1560000.00");
        assert_eq!(csv_pounds(5), "0.05");
        assert_eq!(csv_pounds(i64::MIN), "-92233720368547758.08");
    }

    #[test]
    fn csv_fields_are_quoted_when_they_must_be() {
        let mut csv = Csv::new(&["a", "b"]);
        csv.row(["Kingsmere, Alder \"Valley\"".to_string(), "x".to_string()]);
        assert_eq!(csv.text, "a,b\r\n\"Kingsmere, Alder \"\"Valley\"\"\",x\r\n");
    }

    #[test]
    fn as_of_takes_a_sequence_or_a_time() {
        use pb::as_of::At;
        assert_eq!(as_of("42").map(|a| a.at), Ok(Some(At::Sequence(42))));
        assert_eq!(
            as_of("2019-04-30T12:00:00Z").map(|a| a.at),
            Ok(Some(At::RecordedAtUs(1_556_625_600_000_000)))
        );
        assert!(as_of("yesterday").is_err());
    }

    #[test]
    fn months_are_numbers_or_m_numbers_in_range() {
        assert_eq!(month("M6").map(|m| m.number()), Ok(6));
        assert_eq!(month("12").map(|m| m.number()), Ok(12));
        assert!(month("13").is_err());
        assert!(month("0").is_err());
        assert!(month("June").is_err());
    }

    #[test]
    fn a_position_prints_members_then_the_system_then_the_wider_ics() {
        let figures = |actual: i64| pb::PositionFigures {
            actual_ytd_pence: actual,
            ..pb::PositionFigures::default()
        };
        let member = |code: &str, in_ct: bool, actual: i64| pb::MemberPosition {
            member: code.to_string(),
            name: format!("{code} name"),
            in_control_total: in_ct,
            plan_revision: Some(1),
            figures: Some(figures(actual)),
            ..pb::MemberPosition::default()
        };
        let report = pb::PositionReport {
            basis: None,
            members: vec![
                member("KCC", false, -30_000_000),
                member("KHFT", true, -528_000_000),
            ],
            control_total: Some(figures(-528_000_000)),
            wider_ics: Some(figures(-558_000_000)),
        };
        let text = position_table(&report);
        let at = |needle: &str| {
            text.find(needle)
                .unwrap_or_else(|| panic!("{needle} in\n{text}"))
        };
        assert!(at("KHFT") < at("SYSTEM"));
        assert!(at("SYSTEM") < at("KCC"));
        assert!(at("KCC") < at("WIDER ICS"));
        assert!(text.contains("(5,280,000.00)"), "{text}");
        assert!(text.contains("(5,580,000.00)"), "{text}");
        let csv = position_csv(&report).text;
        assert!(
            csv.contains("WIDER ICS,every member,no,0.00,0.00,-5580000.00"),
            "{csv}"
        );
    }
}
