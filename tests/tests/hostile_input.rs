//! Hostile input against the real `ledgerd` binary over real gRPC (no NATS needed).
//!
//! Each test starts its own ledgerd, records a valid ledger (the system `kav`, its members, a
//! contract of each payment model, pooled budgets, a fund, and one accepted command of each of
//! the 28 command rpcs, with 2018/19-M1 closed), and then sends what a careless or hostile
//! client might. Every refusal must
//!
//! - carry the status code `ledger.proto` documents for it;
//! - for INVALID_ARGUMENT, carry one `BadRequest` field violation naming the offending field
//!   by its path in the request; for FAILED_PRECONDITION, name the rule in `ErrorInfo` and
//!   `PreconditionFailure`; for NOT_FOUND / ALREADY_EXISTS, name the resource type;
//! - leave the ledger head (sequence and hash) where it was.
//!
//! The tables are one line per case: `"case" : |r| <mutation of a valid request> => <expected>;`.
//! Every table also runs [`meta_cases`] (missing or malformed `meta`, a stale expected version,
//! a request id already used for another command). A test collects every failing case and
//! fails once, listing each by rpc and case name.
//!
//! Beside the tables:
//!
//! - every setup command resent (also with its request id in the other UUID text forms) is a
//!   duplicate with the original outcome, and records nothing;
//! - request ids and expected versions: a refused command does not use up its id, a reused id
//!   with another command is ALREADY_EXISTS, stale versions are ABORTED;
//! - SubmitBulk stops at the first refused command with `command N:` and `commands[N].…`, and
//!   keeps what came before;
//! - request bodies that are not protobuf, or not this request (INVALID_ARGUMENT naming the
//!   field prost could not decode), and requests over the 4 MiB message limit are refused
//!   without recording anything, and the server keeps serving.
//! - ReadStream refuses a malformed stream (INVALID_ARGUMENT naming `stream`) and one with no
//!   events (NOT_FOUND, a `stream`); ReadStream and ReadAll return exactly the window asked
//!   for, and reads never move the head.

use std::marker::PhantomData;

use api::pb;
use api::pb::command::Command as C;
use api::pb::ledger_service_client::LedgerServiceClient;
use e2e::{Ledgerd, head};
use prost::Message;
use prost::bytes::BufMut;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::Channel;
use tonic::{Code, Status};
use tonic_types::StatusExt;
use uuid::Uuid;

use Expect::{Conflict, Exists, Invalid, NotFound, Reused, Rule};

type Client = LedgerServiceClient<Channel>;

// ---- what a refusal must look like ---------------------------------------------------------

/// The refusal a case expects.
#[derive(Clone, Copy, Debug)]
enum Expect {
    /// INVALID_ARGUMENT with one BadRequest violation naming exactly this field.
    Invalid(&'static str),
    /// FAILED_PRECONDITION; ErrorInfo.reason and the PreconditionFailure type name the rule.
    Rule(&'static str),
    /// NOT_FOUND; ResourceInfo names the resource type.
    NotFound(&'static str),
    /// ALREADY_EXISTS; ResourceInfo names the resource type.
    Exists(&'static str),
    /// ALREADY_EXISTS: the request id was already used for a different command.
    Reused,
    /// ABORTED: the expected version is not the stream's.
    Conflict,
}

impl Expect {
    fn code(self) -> Code {
        match self {
            Invalid(_) => Code::InvalidArgument,
            Rule(_) => Code::FailedPrecondition,
            NotFound(_) => Code::NotFound,
            Exists(_) | Reused => Code::AlreadyExists,
            Conflict => Code::Aborted,
        }
    }
}

/// Checks `status` against `expect`; the error says what differs.
fn check(status: &Status, expect: Expect) -> Result<(), String> {
    let got = format!("got {:?} '{}'", status.code(), status.message());
    if status.code() != expect.code() {
        return Err(format!("expected {expect:?}, {got}"));
    }
    let details = status.get_error_details();
    let fail = |what: String| Err(format!("{what}; {got}; details {details:?}"));
    match expect {
        Invalid(field) => {
            let violations = details
                .bad_request()
                .map(|b| b.field_violations.as_slice())
                .unwrap_or_default();
            let [violation] = violations else {
                return fail(format!("expected one BadRequest violation naming {field}"));
            };
            let named = &violation.field;
            if named != field {
                return fail(format!(
                    "expected BadRequest field '{field}', got '{named}'"
                ));
            }
            if violation.description.is_empty() {
                return fail(format!("the violation of '{named}' does not say why"));
            }
        }
        Rule(rule) => {
            let info = details.error_info();
            if info.map(|i| (i.reason.as_str(), i.domain.as_str())) != Some((rule, "ics.ledger.v1"))
            {
                return fail(format!("expected ErrorInfo reason {rule}"));
            }
            let types: Vec<&str> = details
                .precondition_failure()
                .map(|p| p.violations.iter().map(|v| v.r#type.as_str()).collect())
                .unwrap_or_default();
            if types != [rule] {
                return fail(format!("expected a PreconditionFailure of type {rule}"));
            }
        }
        NotFound(what) | Exists(what) => {
            let named = details.resource_info().map(|r| r.resource_type.as_str());
            if named != Some(what) {
                return fail(format!("expected ResourceInfo type '{what}'"));
            }
        }
        Reused => {
            if !status.message().contains("meta.request_id") {
                return fail("expected the message to name meta.request_id".to_string());
            }
        }
        Conflict => {
            let reason = details.error_info().map(|i| i.reason.as_str());
            if reason != Some("VERSION_CONFLICT") {
                return fail("expected ErrorInfo reason VERSION_CONFLICT".to_string());
            }
        }
    }
    Ok(())
}

// ---- sending commands ----------------------------------------------------------------------

/// A command request message: it has a `meta` and goes in the bulk `Command` oneof.
trait Request: Clone {
    fn meta_mut(&mut self) -> &mut Option<pb::CommandMeta>;
    fn into_command(self) -> pb::Command;
}

macro_rules! rpcs {
    ($($request:ident => $variant:ident . $method:ident),* $(,)?) => {
        $(impl Request for pb::$request {
            fn meta_mut(&mut self) -> &mut Option<pb::CommandMeta> {
                &mut self.meta
            }
            fn into_command(self) -> pb::Command {
                pb::Command { command: Some(C::$variant(self)) }
            }
        })*

        /// Sends a command through its own unary rpc (never SubmitBulk).
        async fn send(client: &mut Client, command: pb::Command) -> Result<pb::CommandReply, Status> {
            let reply = match command.command {
                None => return Err(Status::invalid_argument("test bug: an empty Command")),
                $(Some(C::$variant(request)) => client.$method(request).await,)*
            };
            reply.map(tonic::Response::into_inner)
        }

        /// The rpc a command goes through, for messages.
        fn rpc_name(command: &pb::Command) -> &'static str {
            match command.command {
                None => "(none)",
                $(Some(C::$variant(_)) => stringify!($variant),)*
            }
        }
    };
}

rpcs! {
    EstablishSystemRequest => EstablishSystem.establish_system,
    AdmitMemberRequest => AdmitMember.admit_member,
    AgreePlanRequest => AgreePlan.agree_plan,
    SubmitReturnRequest => SubmitReturn.submit_return,
    ReportMetricRequest => ReportMetric.report_metric,
    ClosePeriodRequest => ClosePeriod.close_period,
    FileReturnRequest => FileReturn.file_return,
    EstablishBudgetRequest => EstablishBudget.establish_budget,
    PledgeContributionRequest => PledgeContribution.pledge_contribution,
    PayContributionRequest => PayContribution.pay_contribution,
    RecordSpendRequest => RecordSpend.record_spend,
    VaryBudgetRequest => VaryBudget.vary_budget,
    SettleRiskShareRequest => SettleRiskShare.settle_risk_share,
    CloseBudgetRequest => CloseBudget.close_budget,
    AllocateFundRequest => AllocateFund.allocate_fund,
    AssessTrancheRequest => AssessTranche.assess_tranche,
    PayTrancheRequest => PayTranche.pay_tranche,
    ClawBackRequest => ClawBack.claw_back,
    AgreeContractRequest => AgreeContract.agree_contract,
    VaryContractRequest => VaryContract.vary_contract,
    RecordActivityRequest => RecordActivity.record_activity,
    RaiseInvoiceRequest => RaiseInvoice.raise_invoice,
    RecordPaymentRequest => RecordPayment.record_payment,
    RaiseDisputeRequest => RaiseDispute.raise_dispute,
    ResolveDisputeRequest => ResolveDispute.resolve_dispute,
    ReconcileCquinRequest => ReconcileCquin.reconcile_cquin,
    RecordAdjustmentRequest => RecordAdjustment.record_adjustment,
    TerminateContractRequest => TerminateContract.terminate_contract,
}

/// Meta with a fresh random request id.
fn meta() -> Option<pb::CommandMeta> {
    Some(pb::CommandMeta {
        request_id: Uuid::new_v4().to_string(),
        ..Default::default()
    })
}

/// A copy of `base` with a fresh request id, changed by `mutate`.
fn mutated<R: Request>(base: &R, mutate: impl FnOnce(&mut R)) -> pb::Command {
    let mut request = base.clone();
    *request.meta_mut() = meta();
    mutate(&mut request);
    request.into_command()
}

fn head_of(reply: &pb::HeadReply) -> (u64, Vec<u8>) {
    (reply.sequence, reply.hash.clone())
}

/// Runs refusal cases against one ledgerd and collects the failures.
struct Harness {
    client: Client,
    /// The request id of a recorded command (EstablishSystem), for the reuse case.
    recorded_id: String,
    cases: usize,
    failures: Vec<String>,
}

impl Harness {
    /// Sends `command` expecting `expect`, and checks the head did not move.
    async fn refuse(
        &mut self,
        rpc: &str,
        case: &str,
        command: pb::Command,
        expect: Expect,
    ) -> anyhow::Result<()> {
        self.cases += 1;
        let before = head(&mut self.client).await?;
        let result = send(&mut self.client, command).await;
        let after = head(&mut self.client).await?;
        let mut problems = Vec::new();
        match &result {
            Ok(reply) => problems.push(format!("accepted ({reply:?}), expected {expect:?}")),
            Err(status) => problems.extend(check(status, expect).err()),
        }
        if head_of(&after) != head_of(&before) {
            problems.push(format!(
                "the head moved from {} to {}",
                before.sequence, after.sequence
            ));
        }
        if !problems.is_empty() {
            self.failures
                .push(format!("{rpc} / {case}: {}", problems.join("; ")));
        }
        Ok(())
    }

    /// Fails the test listing every failed case.
    fn finish(&self, ledger: &Ledgerd) {
        assert!(
            self.failures.is_empty(),
            "{} of {} hostile-input cases failed:\n  {}\nledgerd log tail:\n{}",
            self.failures.len(),
            self.cases,
            self.failures.join("\n  "),
            ledger.log_tail()
        );
        assert!(self.cases > 0, "no cases ran");
    }
}

/// The cases every command rpc gets: `meta` missing or malformed, a stale expected version,
/// and a request id already used for a different command.
async fn meta_cases<R: Request>(h: &mut Harness, rpc: &str, base: &R) -> anyhow::Result<()> {
    let id = || Uuid::new_v4().to_string();
    let with_id = |request_id: String| {
        Some(pb::CommandMeta {
            request_id,
            ..Default::default()
        })
    };
    let cases = [
        ("meta missing", None, Invalid("meta")),
        (
            "meta empty",
            Some(pb::CommandMeta::default()),
            Invalid("meta.request_id"),
        ),
        (
            "request_id not a UUID",
            with_id("order-42".into()),
            Invalid("meta.request_id"),
        ),
        (
            "request_id nil UUID",
            with_id(Uuid::nil().to_string()),
            Invalid("meta.request_id"),
        ),
        (
            "request_id UUID + junk",
            with_id(format!("{}x", id())),
            Invalid("meta.request_id"),
        ),
        (
            "request_id 100 kB",
            with_id("7".repeat(100_000)),
            Invalid("meta.request_id"),
        ),
        (
            "request_id with NUL",
            with_id(format!("{}\0", id())),
            Invalid("meta.request_id"),
        ),
        (
            "correlation_id not a UUID",
            Some(pb::CommandMeta {
                request_id: id(),
                correlation_id: "month-end".into(),
                expected_version: None,
            }),
            Invalid("meta.correlation_id"),
        ),
        (
            "expected_version stale",
            Some(pb::CommandMeta {
                request_id: id(),
                expected_version: Some(1_000_000),
                ..Default::default()
            }),
            Conflict,
        ),
        (
            "request_id of a recorded command",
            with_id(h.recorded_id.clone()),
            Reused,
        ),
    ];
    for (case, meta, expect) in cases {
        let mut request = base.clone();
        *request.meta_mut() = meta;
        h.refuse(rpc, case, request.into_command(), expect).await?;
    }
    Ok(())
}

/// Cases for one rpc: `"case" : |r| <mutation of base> => <Expect>;`.
macro_rules! cases {
    ($h:expr, $rpc:literal, $base:expr; $($case:literal : |$r:pat_param| $mutation:expr => $expect:expr;)*) => {{
        let base = $base;
        $($h.refuse($rpc, $case, mutated(&base, |$r| $mutation), $expect).await?;)*
        base
    }};
}

/// The table of one rpc: the [`meta_cases`], then its own `cases!`.
macro_rules! table {
    ($h:expr, $rpc:literal, $base:expr; $($cases:tt)*) => {{
        let base = cases! { $h, $rpc, $base; $($cases)* };
        meta_cases($h, $rpc, &base).await?;
    }};
}

// ---- values --------------------------------------------------------------------------------

fn at(year: u32, month: u32) -> Option<pb::Period> {
    Some(pb::Period { year, month })
}

/// 2018/19-M2: open, in every aggregate's year.
fn open() -> Option<pb::Period> {
    at(2018, 2)
}

/// 2018/19-M1: closed by the setup.
fn closed() -> Option<pb::Period> {
    at(2018, 1)
}

/// `n` bytes of text (513 is one over the limit of names and reasons).
fn long(n: usize) -> String {
    "x".repeat(n)
}

fn s(text: &str) -> String {
    text.to_string()
}

fn share(member: &str, share_bp: u32) -> pb::Share {
    pb::Share {
        member: s(member),
        share_bp,
    }
}

fn scheme(code: &str, name: &str, ring_fenced: bool) -> pb::Scheme {
    pb::Scheme {
        scheme: s(code),
        name: s(name),
        ring_fenced,
    }
}

fn recipient(member: &str, allocation_pence: i64) -> pb::Recipient {
    pb::Recipient {
        member: s(member),
        allocation_pence,
    }
}

fn finance(code: &str, weight_bp: u32) -> pb::Condition {
    pb::Condition {
        condition: s(code),
        kind: pb::ConditionKind::SystemFinance.into(),
        weight_bp,
        threshold_bp: None,
    }
}

fn ae(code: &str, weight_bp: u32, threshold_bp: u32) -> pb::Condition {
    pb::Condition {
        condition: s(code),
        kind: pb::ConditionKind::AeFourHour.into(),
        weight_bp,
        threshold_bp: Some(threshold_bp),
    }
}

fn finance_figures(condition: &str, actual: i64, control: i64) -> pb::Evidence {
    pb::Evidence {
        condition: s(condition),
        figures: Some(pb::Figures {
            figures: Some(pb::figures::Figures::SystemFinance(
                pb::figures::SystemFinance {
                    actual_ytd_pence: actual,
                    control_total_ytd_pence: control,
                },
            )),
        }),
    }
}

fn ae_figures(condition: &str, performance_bp: u32) -> pb::Evidence {
    pb::Evidence {
        condition: s(condition),
        figures: Some(pb::Figures {
            figures: Some(pb::figures::Figures::AeFourHour(pb::figures::AeFourHour {
                performance_bp,
            })),
        }),
    }
}

fn balance(counterparty: &str, income_pence: i64) -> pb::CounterpartyBalance {
    pb::CounterpartyBalance {
        counterparty: s(counterparty),
        income_pence,
        ..Default::default()
    }
}

mod model {
    use api::pb;
    use api::pb::payment_model::{self as m, Model};

    fn wrap(model: Model) -> Option<pb::PaymentModel> {
        Some(pb::PaymentModel { model: Some(model) })
    }

    pub fn block(annual_value_pence: i64) -> Option<pb::PaymentModel> {
        wrap(Model::Block(m::Block { annual_value_pence }))
    }

    pub fn tariff(planned_units: u64, unit_price_pence: i64) -> Option<pb::PaymentModel> {
        wrap(Model::ActivityTariff(m::ActivityTariff {
            planned_units,
            unit_price_pence,
        }))
    }

    pub fn aligned(
        fixed_pence: i64,
        planned_units: u64,
        unit_price_pence: i64,
        marginal_rate_bp: u32,
    ) -> Option<pb::PaymentModel> {
        wrap(Model::AlignedPayment(m::AlignedPayment {
            fixed_pence,
            planned_units,
            unit_price_pence,
            marginal_rate_bp,
        }))
    }

    pub fn capitation(
        per_head_pence: i64,
        population: u64,
        gain_share_bp: u32,
        loss_share_bp: u32,
    ) -> Option<pb::PaymentModel> {
        wrap(Model::Capitation(m::Capitation {
            per_head_pence,
            population,
            gain_share_bp,
            loss_share_bp,
        }))
    }

    pub fn cquin(base_value_pence: i64, rate_bp: u32) -> Option<pb::PaymentModel> {
        wrap(Model::Cquin(m::Cquin {
            base_value_pence,
            rate_bp,
        }))
    }

    /// A model message with no model set in its oneof.
    pub fn none() -> Option<pb::PaymentModel> {
        Some(pb::PaymentModel { model: None })
    }
}

// ---- the valid ledger every test starts from -----------------------------------------------

fn member(code: &str, name: &str, kind: pb::MemberKind, in_control_total: bool) -> pb::Command {
    pb::AdmitMemberRequest {
        meta: meta(),
        member: s(code),
        name: s(name),
        kind: kind.into(),
        in_control_total,
    }
    .into_command()
}

fn contract(code: &str, provider: &str, model: Option<pb::PaymentModel>) -> pb::Command {
    pb::AgreeContractRequest {
        meta: meta(),
        contract: s(code),
        commissioner: s("KCCG"),
        provider: s(provider),
        year: 2018,
        model,
        description: format!("Contract {code}"),
    }
    .into_command()
}

fn budget(code: &str, schemes: Vec<pb::Scheme>, under: [u32; 2]) -> pb::Command {
    pb::EstablishBudgetRequest {
        meta: meta(),
        budget: s(code),
        name: s("Better Care Fund"),
        host: s("KCC"),
        year: 2018,
        partners: vec![s("KCCG"), s("KCC")],
        schemes,
        overspend_shares: vec![share("KCCG", 5000), share("KCC", 5000)],
        underspend_shares: vec![share("KCCG", under[0]), share("KCC", under[1])],
    }
    .into_command()
}

fn pledge(
    budget: &str,
    partner: &str,
    amount_pence: i64,
    ring_fenced: Option<&str>,
) -> pb::Command {
    pb::PledgeContributionRequest {
        meta: meta(),
        budget: s(budget),
        partner: s(partner),
        amount_pence,
        ring_fenced_scheme: ring_fenced.map(s),
    }
    .into_command()
}

fn dispute(code: &str, invoice: Option<&str>, amount_pence: i64) -> pb::Command {
    pb::RaiseDisputeRequest {
        meta: meta(),
        contract: s("C1"),
        dispute: s(code),
        invoice: invoice.map(s),
        period: open(),
        amount_pence,
        reason: s("Activity queried"),
    }
    .into_command()
}

/// Kingsmere & Alder Valley 2018/19 (amounts from `deploy/demo/kingsmere-2018-19.ics`, in
/// pence), with one accepted command of every one of the 28 command rpcs:
///
/// - members KCCG (commissioner), KHFT, AVT (acute), KCHT (community), AKMH (mental health),
///   KNPCN (PCN, outside the control total), KCC (council, outside);
/// - contracts C1 (block, KCCG→KCHT), C3 (activity tariff), CQ (CQUIN, reconciled), C5
///   (aligned), C6 (capitation), CT (block, terminated);
/// - budgets BCF (schemes COMMUNITY, DFG ring-fenced, FALLS; unsettled) and OLD (settled and
///   closed); fund SSF (Q1 assessed and paid);
/// - invoice C1/C1-01 of 7,000,000.00 with 3,000,000.00 paid; disputes C1/D1 (open, 1,000.00
///   on C1-01) and C1/D2 (resolved);
/// - 2018/19-M1 closed, so M2 is the first open period;
/// - KHFT's position for M1 filed as of sequence 5.
fn setup_commands() -> Vec<pb::Command> {
    use pb::MemberKind as K;
    vec![
        pb::EstablishSystemRequest {
            meta: meta(),
            system: s("kav"),
            name: s("Kingsmere & Alder Valley ICS"),
            first_year: 2018,
        }
        .into_command(),
        member("KCCG", "Kingsmere CCG", K::Commissioner, true),
        member("KHFT", "Kingsmere Hospitals NHS FT", K::AcuteTrust, true),
        member("AVT", "Alder Valley NHS Trust", K::AcuteTrust, true),
        member(
            "KCHT",
            "Kingsmere Community Health",
            K::CommunityTrust,
            true,
        ),
        member(
            "AKMH",
            "Alder & Kingsmere MH NHS FT",
            K::MentalHealthTrust,
            true,
        ),
        member("KNPCN", "Kingsmere North PCN", K::PrimaryCareNetwork, false),
        member("KCC", "Kingsmere County Council", K::LocalAuthority, false),
        pb::AgreePlanRequest {
            meta: meta(),
            member: s("KHFT"),
            year: 2018,
            income_pence: 42_000_000_000,
            expenditure_pence: 42_600_000_000,
        }
        .into_command(),
        contract("C1", "KCHT", model::block(8_400_000_000)),
        contract("C3", "KHFT", model::tariff(24_000, 300_000)),
        contract("CQ", "KHFT", model::cquin(31_200_000_000, 250)),
        contract(
            "C5",
            "AVT",
            model::aligned(20_400_000_000, 36_000, 200_000, 5000),
        ),
        contract("C6", "KNPCN", model::capitation(4_800, 50_000, 5000, 5000)),
        contract("CT", "AKMH", model::block(100_000_000)),
        budget(
            "BCF",
            vec![
                scheme("COMMUNITY", "Community health and social care", false),
                scheme("DFG", "Disabled Facilities Grant", true),
            ],
            [7000, 3000],
        ),
        budget(
            "OLD",
            vec![scheme("COMMUNITY", "Community", false)],
            [5000, 5000],
        ),
        pledge("BCF", "KCCG", 2_800_000_000, None),
        pledge("BCF", "KCC", 960_000_000, None),
        pledge("BCF", "KCC", 240_000_000, Some("DFG")),
        pledge("OLD", "KCCG", 100_000, None),
        pb::AllocateFundRequest {
            meta: meta(),
            fund: s("SSF"),
            name: s("System sustainability fund"),
            year: 2018,
            recipients: vec![
                recipient("KHFT", 480_000_000),
                recipient("AVT", 240_000_000),
            ],
            conditions: vec![finance("FIN", 7000), ae("AE", 3000, 9000)],
        }
        .into_command(),
        // ---- 2018/19-M1 ----
        pb::RaiseInvoiceRequest {
            meta: meta(),
            contract: s("C1"),
            invoice: s("C1-01"),
            period: closed(),
            amount_pence: 700_000_000,
            corrects: None,
        }
        .into_command(),
        pb::RecordPaymentRequest {
            meta: meta(),
            contract: s("C1"),
            invoice: s("C1-01"),
            period: closed(),
            amount_pence: 300_000_000,
        }
        .into_command(),
        pb::SubmitReturnRequest {
            meta: meta(),
            member: s("KHFT"),
            period: closed(),
            income_pence: 3_500_000_000,
            expenditure_pence: 3_550_000_000,
            balances: vec![balance("KCCG", 2_665_000_000)],
        }
        .into_command(),
        pb::ReportMetricRequest {
            meta: meta(),
            member: s("KHFT"),
            period: closed(),
            metric: pb::Metric::AeFourHour.into(),
            value: 9100,
        }
        .into_command(),
        pb::RecordActivityRequest {
            meta: meta(),
            contract: s("C3"),
            period: closed(),
            units: 2000,
            corrects: None,
        }
        .into_command(),
        pb::RecordSpendRequest {
            meta: meta(),
            budget: s("BCF"),
            scheme: s("COMMUNITY"),
            period: closed(),
            amount_pence: 313_333_334,
            corrects: None,
        }
        .into_command(),
        pb::PayContributionRequest {
            meta: meta(),
            budget: s("BCF"),
            partner: s("KCCG"),
            period: closed(),
            amount_pence: 700_000_000,
        }
        .into_command(),
        pb::ClosePeriodRequest {
            meta: meta(),
            period: closed(),
        }
        .into_command(),
        // ---- 2018/19-M2 and later ----
        pb::VaryBudgetRequest {
            meta: meta(),
            budget: s("BCF"),
            reason: s("Add a falls prevention scheme"),
            overspend_shares: None,
            underspend_shares: None,
            add_schemes: vec![scheme("FALLS", "Falls prevention", false)],
        }
        .into_command(),
        pb::SettleRiskShareRequest {
            meta: meta(),
            budget: s("OLD"),
            period: open(),
        }
        .into_command(),
        pb::CloseBudgetRequest {
            meta: meta(),
            budget: s("OLD"),
            period: open(),
        }
        .into_command(),
        pb::AssessTrancheRequest {
            meta: meta(),
            fund: s("SSF"),
            quarter: 1,
            evidence: vec![finance_figures("FIN", 0, 0), ae_figures("AE", 9100)],
        }
        .into_command(),
        pb::PayTrancheRequest {
            meta: meta(),
            fund: s("SSF"),
            quarter: 1,
            period: at(2018, 3),
        }
        .into_command(),
        pb::ClawBackRequest {
            meta: meta(),
            fund: s("SSF"),
            quarter: 1,
            member: s("KHFT"),
            period: at(2018, 3),
            amount_pence: 1_000,
            reason: s("Overstated activity"),
        }
        .into_command(),
        pb::VaryContractRequest {
            meta: meta(),
            contract: s("C1"),
            period: open(),
            reason: s("Uplift"),
            model: model::block(8_500_000_000),
        }
        .into_command(),
        dispute("D1", Some("C1-01"), 100_000),
        dispute("D2", None, 50_000),
        pb::ResolveDisputeRequest {
            meta: meta(),
            contract: s("C1"),
            dispute: s("D2"),
            period: open(),
            provider_keeps_pence: 20_000,
            resolution: s("Split the difference"),
        }
        .into_command(),
        pb::ReconcileCquinRequest {
            meta: meta(),
            contract: s("CQ"),
            period: open(),
            achievement_bp: 8000,
        }
        .into_command(),
        pb::RecordAdjustmentRequest {
            meta: meta(),
            contract: s("C1"),
            period: open(),
            amount_pence: -5_000,
            reason: s("Credit note"),
            corrects: None,
        }
        .into_command(),
        pb::TerminateContractRequest {
            meta: meta(),
            contract: s("CT"),
            period: open(),
            reason: s("Service decommissioned"),
        }
        .into_command(),
        filed_return(5),
    ]
}

/// KHFT files its position for 2018/19 M1 as the log stood at `as_of_sequence`.
fn filed_return(as_of_sequence: u64) -> pb::Command {
    pb::FileReturnRequest {
        meta: meta(),
        member: s("KHFT"),
        report: Some(report_spec(
            pb::ReportKind::Position,
            pb::ReportScope::Unspecified,
        )),
        period: closed(),
        as_of_sequence,
        fingerprint: vec![0x5a; 32],
    }
    .into_command()
}

fn report_spec(kind: pb::ReportKind, scope: pb::ReportScope) -> pb::ReportSpec {
    pb::ReportSpec {
        kind: kind.into(),
        scope: scope.into(),
        receivables_payables_threshold_pence: None,
        income_expenditure_threshold_pence: None,
    }
}

/// A running ledgerd holding the setup, and what the setup recorded.
struct Fixture {
    ledger: Ledgerd,
    client: Client,
    /// Each setup command and the reply that accepted it.
    recorded: Vec<(pb::Command, pb::CommandReply)>,
    _dir: tempfile::TempDir,
}

impl Fixture {
    async fn start() -> anyhow::Result<Fixture> {
        let dir = tempfile::tempdir()?;
        let ledger = Ledgerd::start(&dir.path().join("ledger"), None)?;
        let mut client = connect(&ledger).await?;
        let mut recorded = Vec::new();
        for command in setup_commands() {
            let reply = send(&mut client, command.clone()).await.map_err(|status| {
                anyhow::anyhow!("setup {} refused: {status:?}", rpc_name(&command))
            })?;
            anyhow::ensure!(
                !reply.duplicate,
                "setup {} was a duplicate",
                rpc_name(&command)
            );
            recorded.push((command, reply));
        }
        let rpcs: std::collections::BTreeSet<_> =
            recorded.iter().map(|(c, _)| rpc_name(c)).collect();
        anyhow::ensure!(
            rpcs.len() == 28,
            "the setup covers {} rpcs, not 28",
            rpcs.len()
        );
        Ok(Fixture {
            ledger,
            client,
            recorded,
            _dir: dir,
        })
    }

    fn harness(&self) -> Harness {
        let recorded_id = self
            .recorded
            .first()
            .and_then(|(command, _)| match &command.command {
                Some(C::EstablishSystem(r)) => r.meta.as_ref().map(|m| m.request_id.clone()),
                _ => None,
            })
            .expect("the setup starts with EstablishSystem");
        Harness {
            client: self.client.clone(),
            recorded_id,
            cases: 0,
            failures: Vec::new(),
        }
    }
}

/// A client of `ledger`, retrying briefly: `Ledgerd::start` returns once a TCP connect to the
/// port succeeds, which on loopback can (rarely) be a socket connected to itself before
/// ledgerd listens.
async fn connect(ledger: &Ledgerd) -> anyhow::Result<Client> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match ledger.client().await {
            Ok(client) => return Ok(client),
            Err(_) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            Err(error) => return Err(error),
        }
    }
}

// ---- the tables, one per rpc ---------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn system_commands_refuse_hostile_input() -> anyhow::Result<()> {
    let fixture = Fixture::start().await?;
    let mut h = fixture.harness();
    let h = &mut h;

    table! { h, "EstablishSystem", pb::EstablishSystemRequest { meta: meta(), system: s("kav"), name: s("Kingsmere again"), first_year: 2018 };
        "re-establishing the system"   : |_| {}                                  => Exists("system");
        "system empty"                 : |r| r.system = s("")                    => Invalid("system");
        "system uppercase"             : |r| r.system = s("KAV")                 => Invalid("system");
        "system with a NATS wildcard"  : |r| r.system = s("kav.>")               => Invalid("system");
        "system 33 characters"         : |r| r.system = "k".repeat(33)           => Invalid("system");
        "name empty"                   : |r| r.name = s("")                      => Invalid("name");
        "name blank"                   : |r| r.name = s(" \t ")                  => Invalid("name");
        "name 513 bytes"               : |r| r.name = long(513)                  => Invalid("name");
        "name 257 two-byte chars"      : |r| r.name = "é".repeat(257)            => Invalid("name");
        "name 1 MiB"                   : |r| r.name = long(1 << 20)              => Invalid("name");
        "name with a NUL"              : |r| r.name = s("Kings\0mere")           => Invalid("name");
        "name with a newline"          : |r| r.name = s("Kings\nmere")           => Invalid("name");
        "first_year 1999"              : |r| r.first_year = 1999                 => Invalid("first_year");
        "first_year 0"                 : |r| r.first_year = 0                    => Invalid("first_year");
        "first_year 3000"              : |r| r.first_year = 3000                 => Invalid("first_year");
        "first_year u32::MAX"          : |r| r.first_year = u32::MAX             => Invalid("first_year");
    }

    table! { h, "AdmitMember", pb::AdmitMemberRequest { meta: meta(), member: s("NEWT"), name: s("New Trust"), kind: pb::MemberKind::AcuteTrust.into(), in_control_total: true };
        "member already admitted"      : |r| r.member = s("KHFT")                => Exists("member");
        "member lowercase"             : |r| r.member = s("newt")                => Invalid("member");
        "member empty"                 : |r| r.member = s("")                    => Invalid("member");
        "member one character"         : |r| r.member = s("N")                   => Invalid("member");
        "member 9 characters"          : |r| r.member = s("ABCDEFGHI")           => Invalid("member");
        "member 1 MiB"                 : |r| r.member = "A".repeat(1 << 20)      => Invalid("member");
        "member with a space"          : |r| r.member = s("NE WT")               => Invalid("member");
        "member non-ASCII"             : |r| r.member = s("NÉWT")                => Invalid("member");
        "name empty"                   : |r| r.name = s("")                      => Invalid("name");
        "name 513 bytes"               : |r| r.name = long(513)                  => Invalid("name");
        "kind UNSPECIFIED"             : |r| r.kind = 0                          => Invalid("kind");
        "kind 99"                      : |r| r.kind = 99                         => Invalid("kind");
        "kind -1"                      : |r| r.kind = -1                         => Invalid("kind");
        "council in the control total" : |r| r.kind = pb::MemberKind::LocalAuthority.into() => Invalid("in_control_total");
        "PCN in the control total"     : |r| r.kind = pb::MemberKind::PrimaryCareNetwork.into() => Invalid("in_control_total");
    }

    table! { h, "AgreePlan", pb::AgreePlanRequest { meta: meta(), member: s("KHFT"), year: 2019, income_pence: 100, expenditure_pence: 100 };
        "income negative"              : |r| r.income_pence = -1                 => Invalid("income_pence");
        "income i64::MIN"              : |r| r.income_pence = i64::MIN           => Invalid("income_pence");
        "expenditure negative"         : |r| r.expenditure_pence = -1            => Invalid("expenditure_pence");
        "member not admitted"          : |r| r.member = s("ZZZZ")                => Rule("MEMBER_NOT_ADMITTED");
        "member lowercase"             : |r| r.member = s("khft")                => Invalid("member");
        "member too long"              : |r| r.member = s("KHFTKHFTK")           => Invalid("member");
        "year 1999"                    : |r| r.year = 1999                       => Invalid("year");
        "year 0"                       : |r| r.year = 0                          => Invalid("year");
        "year before the first year"   : |r| r.year = 2017                       => Invalid("year");
        "year with a closed period"    : |r| r.year = 2018                       => Rule("PLAN_FROZEN");
    }

    table! { h, "SubmitReturn", pb::SubmitReturnRequest { meta: meta(), member: s("KHFT"), period: open(), income_pence: 100, expenditure_pence: 100, balances: vec![balance("KCCG", 100)] };
        "period missing"               : |r| r.period = None                     => Invalid("period");
        "month 0"                      : |r| r.period = at(2018, 0)              => Invalid("period.month");
        "month 13"                     : |r| r.period = at(2018, 13)             => Invalid("period.month");
        "year 1999"                    : |r| r.period = at(1999, 2)              => Invalid("period.year");
        "year u32::MAX"                : |r| r.period = at(u32::MAX, 2)          => Invalid("period.year");
        "before the first year"        : |r| r.period = at(2017, 12)             => Invalid("period");
        "closed period"                : |r| r.period = closed()                 => Rule("PERIOD_CLOSED");
        "member not admitted"          : |r| r.member = s("ZZZZ")                => Rule("MEMBER_NOT_ADMITTED");
        "member empty"                 : |r| r.member = s("")                    => Invalid("member");
        "income negative"              : |r| r.income_pence = -1                 => Invalid("income_pence");
        "expenditure i64::MIN"         : |r| r.expenditure_pence = i64::MIN      => Invalid("expenditure_pence");
        "balance income negative"      : |r| r.balances[0].income_pence = -1     => Invalid("balances[0].income_pence");
        "balance payables negative"    : |r| r.balances[0].payables_pence = -1   => Invalid("balances[0].payables_pence");
        "counterparty lowercase"       : |r| r.balances[0].counterparty = s("kccg") => Invalid("balances[0].counterparty");
        "counterparty empty"           : |r| r.balances.push(balance("", 1))     => Invalid("balances[1].counterparty");
        "counterparty is the member"   : |r| r.balances[0].counterparty = s("KHFT") => Invalid("balances[0].counterparty");
        "counterparty twice"           : |r| r.balances.push(balance("KCCG", 1)) => Invalid("balances[1].counterparty");
        "counterparty not admitted"    : |r| r.balances.push(balance("ZZZZ", 1)) => Rule("MEMBER_NOT_ADMITTED");
    }

    table! { h, "ReportMetric", pb::ReportMetricRequest { meta: meta(), member: s("KHFT"), period: open(), metric: pb::Metric::AeFourHour.into(), value: 9000 };
        "metric UNSPECIFIED"           : |r| r.metric = 0                        => Invalid("metric");
        "metric 99"                    : |r| r.metric = 99                       => Invalid("metric");
        "A&E over 100%"                : |r| r.value = 10_001                    => Invalid("value");
        "A&E negative"                 : |r| r.value = -1                        => Invalid("value");
        "A&E i64::MAX"                 : |r| r.value = i64::MAX                  => Invalid("value");
        "count negative"               : |r| { r.metric = pb::Metric::EmergencyAdmissions.into(); r.value = -1 } => Invalid("value");
        "period missing"               : |r| r.period = None                     => Invalid("period");
        "month 13"                     : |r| r.period = at(2018, 13)             => Invalid("period.month");
        "closed period"                : |r| r.period = closed()                 => Rule("PERIOD_CLOSED");
        "member not admitted"          : |r| r.member = s("ZZZZ")                => Rule("MEMBER_NOT_ADMITTED");
        "member malformed"             : |r| r.member = s("K-H")                 => Invalid("member");
    }

    table! { h, "ClosePeriod", pb::ClosePeriodRequest { meta: meta(), period: open() };
        "period missing"               : |r| r.period = None                     => Invalid("period");
        "month 0"                      : |r| r.period = at(2018, 0)              => Invalid("period.month");
        "month 13"                     : |r| r.period = at(2018, 13)             => Invalid("period.month");
        "year 1999"                    : |r| r.period = at(1999, 1)              => Invalid("period.year");
        "already closed"               : |r| r.period = closed()                 => Rule("PERIODS_CLOSE_IN_ORDER");
        "skipping a period"            : |r| r.period = at(2018, 3)              => Rule("PERIODS_CLOSE_IN_ORDER");
        "before the first year"        : |r| r.period = at(2017, 12)             => Rule("PERIODS_CLOSE_IN_ORDER");
        "a later year"                 : |r| r.period = at(2019, 2)              => Rule("PERIODS_CLOSE_IN_ORDER");
    }

    let scope = |kind: pb::ReportKind, scope: pb::ReportScope| Some(report_spec(kind, scope));
    let unspecified = pb::ReportScope::Unspecified;
    table! { h, "FileReturn", pb::FileReturnRequest { meta: meta(), member: s("KHFT"), report: scope(pb::ReportKind::Position, unspecified), period: at(2018, 6), as_of_sequence: 5, fingerprint: vec![7; 32] };
        "member not admitted"          : |r| r.member = s("ZZZZ")                => Rule("MEMBER_NOT_ADMITTED");
        "member lowercase"             : |r| r.member = s("khft")                => Invalid("member");
        "member 1 MiB"                 : |r| r.member = "K".repeat(1 << 20)      => Invalid("member");
        "fingerprint empty"            : |r| r.fingerprint = vec![]              => Invalid("fingerprint");
        "fingerprint 31 bytes"         : |r| r.fingerprint = vec![7; 31]         => Invalid("fingerprint");
        "fingerprint 33 bytes"         : |r| r.fingerprint = vec![7; 33]         => Invalid("fingerprint");
        "fingerprint as hex text"      : |r| r.fingerprint = "ab".repeat(32).into_bytes() => Invalid("fingerprint");
        "fingerprint 1 MiB"            : |r| r.fingerprint = vec![7; 1 << 20]    => Invalid("fingerprint");
        "as_of_sequence 0"             : |r| r.as_of_sequence = 0                => Invalid("as_of_sequence");
        "as_of_sequence beyond the head" : |r| r.as_of_sequence = 1_000_000      => Invalid("as_of_sequence");
        "as_of_sequence u64::MAX"      : |r| r.as_of_sequence = u64::MAX         => Invalid("as_of_sequence");
        "report missing"               : |r| r.report = None                     => Invalid("report");
        "report kind UNSPECIFIED"      : |r| r.report = scope(pb::ReportKind::Unspecified, unspecified) => Invalid("report.kind");
        "report kind 99"               : |r| r.report = Some(pb::ReportSpec { kind: 99, ..report_spec(pb::ReportKind::Position, unspecified) }) => Invalid("report.kind");
        "consolidation without a scope" : |r| r.report = scope(pb::ReportKind::Consolidation, unspecified) => Invalid("report.scope");
        "aob without a scope"          : |r| r.report = scope(pb::ReportKind::AgreementOfBalances, unspecified) => Invalid("report.scope");
        "funds with a scope"           : |r| r.report = scope(pb::ReportKind::Funds, pb::ReportScope::AllMembers) => Invalid("report.scope");
        "scope 7"                      : |r| r.report = Some(pb::ReportSpec { scope: 7, ..report_spec(pb::ReportKind::Consolidation, unspecified) }) => Invalid("report.scope");
        "position with a threshold"    : |r| r.report = Some(pb::ReportSpec { receivables_payables_threshold_pence: Some(1), ..report_spec(pb::ReportKind::Position, unspecified) }) => Invalid("report.receivables_payables_threshold_pence");
        "aob threshold negative"       : |r| r.report = Some(pb::ReportSpec { income_expenditure_threshold_pence: Some(-1), ..report_spec(pb::ReportKind::AgreementOfBalances, pb::ReportScope::System) }) => Invalid("report.income_expenditure_threshold_pence");
        "period missing"               : |r| r.period = None                     => Invalid("period");
        "month 13"                     : |r| r.period = at(2018, 13)             => Invalid("period.month");
        "year u32::MAX"                : |r| r.period = at(u32::MAX, 1)          => Invalid("period.year");
        "before the first year"        : |r| r.period = at(2017, 12)             => Invalid("period");
    }

    h.finish(&fixture.ledger);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn budget_commands_refuse_hostile_input() -> anyhow::Result<()> {
    let fixture = Fixture::start().await?;
    let mut h = fixture.harness();
    let h = &mut h;

    table! { h, "EstablishBudget", pb::EstablishBudgetRequest { meta: meta(), budget: s("BCF2"), name: s("Second pool"), host: s("KCC"), year: 2018, partners: vec![s("KCCG"), s("KCC")], schemes: vec![scheme("COMMUNITY", "Community", false)], overspend_shares: vec![share("KCCG", 5000), share("KCC", 5000)], underspend_shares: vec![share("KCCG", 5000), share("KCC", 5000)] };
        "budget already exists"        : |r| r.budget = s("BCF")                 => Exists("budget");
        "budget empty"                 : |r| r.budget = s("")                    => Invalid("budget");
        "budget with a space"          : |r| r.budget = s("BCF 2")               => Invalid("budget");
        "budget with a slash"          : |r| r.budget = s("BCF/2")               => Invalid("budget");
        "budget 49 characters"         : |r| r.budget = "B".repeat(49)           => Invalid("budget");
        "name empty"                   : |r| r.name = s("")                      => Invalid("name");
        "name 513 bytes"               : |r| r.name = long(513)                  => Invalid("name");
        "host lowercase"               : |r| r.host = s("kcc")                   => Invalid("host");
        "host not a partner"           : |r| r.host = s("KHFT")                  => Invalid("host");
        "year 1999"                    : |r| r.year = 1999                       => Invalid("year");
        "year before the first year"   : |r| r.year = 2017                       => Invalid("year");
        "no partners"                  : |r| r.partners.clear()                  => Invalid("partners");
        "partner malformed"            : |r| r.partners[1] = s("k c c")          => Invalid("partners[1]");
        "partner twice"                : |r| r.partners.push(s("KCCG"))          => Invalid("partners[2]");
        "partner not admitted"         : |r| r.partners.push(s("ZZZZ"))          => Rule("MEMBER_NOT_ADMITTED");
        "scheme code malformed"        : |r| r.schemes[0].scheme = s("COM MUNITY") => Invalid("schemes[0].scheme");
        "scheme name empty"            : |r| r.schemes[0].name = s("")           => Invalid("schemes[0].name");
        "scheme twice"                 : |r| r.schemes.push(scheme("COMMUNITY", "Again", false)) => Invalid("schemes[1].scheme");
        "share over 100%"              : |r| r.overspend_shares[0].share_bp = 10_001 => Invalid("overspend_shares[0].share_bp");
        "share u32::MAX"               : |r| r.underspend_shares[1].share_bp = u32::MAX => Invalid("underspend_shares[1].share_bp");
        "share member malformed"       : |r| r.underspend_shares[0].member = s("") => Invalid("underspend_shares[0].member");
        "shares sum to 99.99%"         : |r| r.overspend_shares[0].share_bp = 4999 => Rule("SHARES_MUST_SUM_TO_WHOLE");
        "shares sum to 120%"           : |r| r.overspend_shares = vec![share("KCCG", 6000), share("KCC", 6000)] => Rule("SHARES_MUST_SUM_TO_WHOLE");
        "no shares"                    : |r| r.underspend_shares.clear()         => Rule("SHARES_MUST_SUM_TO_WHOLE");
        "share to a non-partner"       : |r| r.overspend_shares[1].member = s("KHFT") => Rule("NOT_A_PARTNER");
        "share member twice"           : |r| r.overspend_shares = vec![share("KCCG", 5000), share("KCCG", 5000)] => Invalid("overspend_shares[1].member");
    }

    table! { h, "PledgeContribution", pb::PledgeContributionRequest { meta: meta(), budget: s("BCF"), partner: s("KCCG"), amount_pence: 100, ring_fenced_scheme: None };
        "amount zero"                  : |r| r.amount_pence = 0                  => Invalid("amount_pence");
        "amount negative"              : |r| r.amount_pence = -1                 => Invalid("amount_pence");
        "amount i64::MIN"              : |r| r.amount_pence = i64::MIN           => Invalid("amount_pence");
        "pledges overflow"             : |r| r.amount_pence = i64::MAX           => Invalid("amount_pence");
        "partner not a partner"        : |r| r.partner = s("KHFT")               => Rule("NOT_A_PARTNER");
        "partner not admitted"         : |r| r.partner = s("ZZZZ")               => Rule("MEMBER_NOT_ADMITTED");
        "partner lowercase"            : |r| r.partner = s("kccg")               => Invalid("partner");
        "ring-fenced scheme unknown"   : |r| r.ring_fenced_scheme = Some(s("NOPE")) => NotFound("scheme");
        "scheme not ring-fenced"       : |r| r.ring_fenced_scheme = Some(s("COMMUNITY")) => Invalid("ring_fenced_scheme");
        "scheme present but empty"     : |r| r.ring_fenced_scheme = Some(s(""))  => Invalid("ring_fenced_scheme");
        "budget unknown"               : |r| r.budget = s("NOPE")                => NotFound("budget");
        "budget malformed"             : |r| r.budget = s("B C F")               => Invalid("budget");
        "budget closed"                : |r| r.budget = s("OLD")                 => Rule("BUDGET_CLOSED");
    }

    table! { h, "PayContribution", pb::PayContributionRequest { meta: meta(), budget: s("BCF"), partner: s("KCCG"), period: open(), amount_pence: 100 };
        "more than pledged"            : |r| r.amount_pence = 2_100_000_001      => Rule("OVER_PAID");
        "payments overflow"            : |r| r.amount_pence = i64::MAX           => Invalid("amount_pence");
        "amount zero"                  : |r| r.amount_pence = 0                  => Invalid("amount_pence");
        "amount negative"              : |r| r.amount_pence = -700_000_000       => Invalid("amount_pence");
        "closed period"                : |r| r.period = closed()                 => Rule("PERIOD_CLOSED");
        "period outside the year"      : |r| r.period = at(2019, 2)              => Rule("PERIOD_OUTSIDE_YEAR");
        "month 13"                     : |r| r.period = at(2018, 13)             => Invalid("period.month");
        "period missing"               : |r| r.period = None                     => Invalid("period");
        "partner not a partner"        : |r| r.partner = s("KHFT")               => Rule("NOT_A_PARTNER");
        "partner too long"             : |r| r.partner = s("KCCGKCCGK")          => Invalid("partner");
        "budget unknown"               : |r| r.budget = s("NOPE")                => NotFound("budget");
        "budget closed"                : |r| r.budget = s("OLD")                 => Rule("BUDGET_CLOSED");
    }

    table! { h, "RecordSpend", pb::RecordSpendRequest { meta: meta(), budget: s("BCF"), scheme: s("COMMUNITY"), period: open(), amount_pence: 100, corrects: None };
        "scheme unknown"               : |r| r.scheme = s("NOPE")                => NotFound("scheme");
        "scheme empty"                 : |r| r.scheme = s("")                    => Invalid("scheme");
        "amount zero"                  : |r| r.amount_pence = 0                  => Invalid("amount_pence");
        "amount negative"              : |r| r.amount_pence = -1                 => Invalid("amount_pence");
        "spend overflows"              : |r| r.amount_pence = i64::MAX           => Invalid("amount_pence");
        "closed period"                : |r| r.period = closed()                 => Rule("PERIOD_CLOSED");
        "period outside the year"      : |r| r.period = at(2019, 1)              => Rule("PERIOD_OUTSIDE_YEAR");
        "corrects the same period"     : |r| r.corrects = open()                 => Invalid("corrects");
        "corrects a later period"      : |r| r.corrects = at(2018, 5)            => Invalid("corrects");
        "corrects month 0"             : |r| r.corrects = at(2018, 0)            => Invalid("corrects.month");
        "corrects year 1999"           : |r| r.corrects = at(1999, 1)            => Invalid("corrects.year");
        "corrects another year"        : |r| r.corrects = at(2017, 12)           => Rule("PERIOD_OUTSIDE_YEAR");
        "budget closed"                : |r| r.budget = s("OLD")                 => Rule("BUDGET_CLOSED");
        "budget unknown"               : |r| r.budget = s("NOPE")                => NotFound("budget");
    }

    table! { h, "VaryBudget", pb::VaryBudgetRequest { meta: meta(), budget: s("BCF"), reason: s("Rebalance"), overspend_shares: Some(pb::ShareList { shares: vec![share("KCCG", 6000), share("KCC", 4000)] }), underspend_shares: None, add_schemes: vec![] };
        "reason empty"                 : |r| r.reason = s("")                    => Invalid("reason");
        "reason 513 bytes"             : |r| r.reason = long(513)                => Invalid("reason");
        "nothing varied"               : |r| r.overspend_shares = None           => Invalid("add_schemes");
        "share over 100%"              : |r| r.overspend_shares = Some(pb::ShareList { shares: vec![share("KCCG", 10_001)] }) => Invalid("overspend_shares.shares[0].share_bp");
        "share member malformed"       : |r| r.overspend_shares = Some(pb::ShareList { shares: vec![share("kccg", 10_000)] }) => Invalid("overspend_shares.shares[0].member");
        "shares sum to 90%"            : |r| r.overspend_shares = Some(pb::ShareList { shares: vec![share("KCCG", 5000), share("KCC", 4000)] }) => Rule("SHARES_MUST_SUM_TO_WHOLE");
        "shares present but empty"     : |r| r.overspend_shares = Some(pb::ShareList::default()) => Rule("SHARES_MUST_SUM_TO_WHOLE");
        "share to a non-partner"       : |r| r.underspend_shares = Some(pb::ShareList { shares: vec![share("KHFT", 10_000)] }) => Rule("NOT_A_PARTNER");
        "share member twice"           : |r| r.overspend_shares = Some(pb::ShareList { shares: vec![share("KCC", 5000), share("KCC", 5000)] }) => Invalid("overspend_shares.shares[1].member");
        "add an existing scheme"       : |r| r.add_schemes = vec![scheme("COMMUNITY", "Again", false)] => Exists("scheme");
        "add a scheme twice"           : |r| r.add_schemes = vec![scheme("NEW", "New", false); 2] => Invalid("add_schemes[1].scheme");
        "add a malformed scheme"       : |r| r.add_schemes = vec![scheme("NEW!", "New", false)] => Invalid("add_schemes[0].scheme");
        "add a scheme without a name"  : |r| r.add_schemes = vec![scheme("NEW", "", false)] => Invalid("add_schemes[0].name");
        "budget unknown"               : |r| r.budget = s("NOPE")                => NotFound("budget");
        "budget closed"                : |r| r.budget = s("OLD")                 => Rule("BUDGET_CLOSED");
    }

    table! { h, "SettleRiskShare", pb::SettleRiskShareRequest { meta: meta(), budget: s("BCF"), period: open() };
        "closed period"                : |r| r.period = closed()                 => Rule("PERIOD_CLOSED");
        "period outside the year"      : |r| r.period = at(2019, 1)              => Rule("PERIOD_OUTSIDE_YEAR");
        "month 0"                      : |r| r.period = at(2018, 0)              => Invalid("period.month");
        "period missing"               : |r| r.period = None                     => Invalid("period");
        "budget closed"                : |r| r.budget = s("OLD")                 => Rule("BUDGET_CLOSED");
        "budget unknown"               : |r| r.budget = s("NOPE")                => NotFound("budget");
        "budget 1 MiB"                 : |r| r.budget = "B".repeat(1 << 20)      => Invalid("budget");
    }

    table! { h, "CloseBudget", pb::CloseBudgetRequest { meta: meta(), budget: s("BCF"), period: open() };
        "not settled yet"              : |_| {}                                  => Rule("BUDGET_SETTLED");
        "already closed"               : |r| r.budget = s("OLD")                 => Rule("BUDGET_CLOSED");
        "month 13"                     : |r| r.period = at(2018, 13)             => Invalid("period.month");
        "period missing"               : |r| r.period = None                     => Invalid("period");
        "budget unknown"               : |r| r.budget = s("NOPE")                => NotFound("budget");
    }

    h.finish(&fixture.ledger);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fund_commands_refuse_hostile_input() -> anyhow::Result<()> {
    let fixture = Fixture::start().await?;
    let mut h = fixture.harness();
    let h = &mut h;

    table! { h, "AllocateFund", pb::AllocateFundRequest { meta: meta(), fund: s("SSF2"), name: s("Second fund"), year: 2018, recipients: vec![recipient("KHFT", 100)], conditions: vec![finance("FIN", 10_000)] };
        "fund already exists"          : |r| r.fund = s("SSF")                   => Exists("fund");
        "fund malformed"               : |r| r.fund = s("SSF#2")                 => Invalid("fund");
        "name empty"                   : |r| r.name = s("")                      => Invalid("name");
        "year 1999"                    : |r| r.year = 1999                       => Invalid("year");
        "year before the first year"   : |r| r.year = 2017                       => Invalid("year");
        "no recipients"                : |r| r.recipients.clear()                => Invalid("recipients");
        "recipient a commissioner"     : |r| r.recipients[0].member = s("KCCG")  => Rule("NOT_A_PROVIDER");
        "recipient the council"        : |r| r.recipients[0].member = s("KCC")   => Rule("NOT_A_PROVIDER");
        "recipient outside the total"  : |r| r.recipients[0].member = s("KNPCN") => Rule("NOT_IN_CONTROL_TOTAL");
        "recipient not admitted"       : |r| r.recipients[0].member = s("ZZZZ")  => Rule("MEMBER_NOT_ADMITTED");
        "recipient malformed"          : |r| r.recipients[0].member = s("khft")  => Invalid("recipients[0].member");
        "recipient twice"              : |r| r.recipients.push(recipient("KHFT", 1)) => Invalid("recipients[1].member");
        "allocation zero"              : |r| r.recipients[0].allocation_pence = 0 => Invalid("recipients[0].allocation_pence");
        "allocation negative"          : |r| r.recipients[0].allocation_pence = -1 => Invalid("recipients[0].allocation_pence");
        "allocations overflow"         : |r| r.recipients = vec![recipient("KHFT", i64::MAX), recipient("AVT", 1)] => Invalid("recipients[0].allocation_pence");
        "no conditions"                : |r| r.conditions.clear()                => Rule("SHARES_MUST_SUM_TO_WHOLE");
        "weights sum to 90%"           : |r| r.conditions[0].weight_bp = 9000    => Rule("SHARES_MUST_SUM_TO_WHOLE");
        "weights sum to 200%"          : |r| r.conditions.push(ae("AE", 10_000, 9000)) => Rule("SHARES_MUST_SUM_TO_WHOLE");
        "weight over 100%"             : |r| r.conditions[0].weight_bp = 10_001  => Invalid("conditions[0].weight_bp");
        "kind UNSPECIFIED"             : |r| r.conditions[0].kind = 0            => Invalid("conditions[0].kind");
        "kind 99"                      : |r| r.conditions[0].kind = 99           => Invalid("conditions[0].kind");
        "A&E without a threshold"      : |r| r.conditions = vec![pb::Condition { threshold_bp: None, ..ae("AE", 10_000, 0) }] => Invalid("conditions[0].threshold_bp");
        "A&E threshold over 100%"      : |r| r.conditions = vec![ae("AE", 10_000, 10_001)] => Invalid("conditions[0].threshold_bp");
        "finance with a threshold"     : |r| r.conditions[0].threshold_bp = Some(9000) => Invalid("conditions[0].threshold_bp");
        "condition code empty"         : |r| r.conditions[0].condition = s("")   => Invalid("conditions[0].condition");
        "condition twice"              : |r| r.conditions = vec![finance("FIN", 5000); 2] => Invalid("conditions[1].condition");
    }

    table! { h, "AssessTranche", pb::AssessTrancheRequest { meta: meta(), fund: s("SSF"), quarter: 2, evidence: vec![finance_figures("FIN", 0, 0), ae_figures("AE", 9500)] };
        "quarter 0"                    : |r| r.quarter = 0                       => Invalid("quarter");
        "quarter 5"                    : |r| r.quarter = 5                       => Invalid("quarter");
        "quarter already assessed"     : |r| r.quarter = 1                       => Rule("TRANCHES_IN_ORDER");
        "quarter out of order"         : |r| r.quarter = 3                       => Rule("TRANCHES_IN_ORDER");
        "no evidence"                  : |r| r.evidence.clear()                  => Rule("EVIDENCE_MISMATCH");
        "evidence for one condition"   : |r| { r.evidence.pop(); }               => Rule("EVIDENCE_MISMATCH");
        "unknown condition"            : |r| r.evidence.push(finance_figures("NOPE", 0, 0)) => Rule("EVIDENCE_MISMATCH");
        "condition twice"              : |r| r.evidence.push(finance_figures("FIN", 0, 0)) => Invalid("evidence[2].condition");
        "condition malformed"          : |r| r.evidence[0].condition = s("F I N") => Invalid("evidence[0].condition");
        "figures missing"              : |r| r.evidence[0].figures = None        => Invalid("evidence[0].figures");
        "figures oneof empty"          : |r| r.evidence[1].figures = Some(pb::Figures::default()) => Invalid("evidence[1].figures");
        "figures of the wrong kind"    : |r| r.evidence[0] = ae_figures("FIN", 9500) => Rule("EVIDENCE_MISMATCH");
        "performance over 100%"        : |r| r.evidence[1] = ae_figures("AE", 10_001) => Invalid("evidence[1].figures.ae_four_hour.performance_bp");
        "fund unknown"                 : |r| r.fund = s("NOPE")                  => NotFound("fund");
    }

    table! { h, "PayTranche", pb::PayTrancheRequest { meta: meta(), fund: s("SSF"), quarter: 2, period: at(2018, 6) };
        "quarter not assessed"         : |_| {}                                  => Rule("TRANCHE_NOT_ASSESSED");
        "quarter already paid"         : |r| r.quarter = 1                       => Rule("TRANCHE_ALREADY_PAID");
        "quarter 0"                    : |r| r.quarter = 0                       => Invalid("quarter");
        "quarter u32::MAX"             : |r| r.quarter = u32::MAX                => Invalid("quarter");
        "month 13"                     : |r| r.period = at(2018, 13)             => Invalid("period.month");
        "period missing"               : |r| r.period = None                     => Invalid("period");
        "fund unknown"                 : |r| r.fund = s("NOPE")                  => NotFound("fund");
        "fund empty"                   : |r| r.fund = s("")                      => Invalid("fund");
    }

    table! { h, "ClawBack", pb::ClawBackRequest { meta: meta(), fund: s("SSF"), quarter: 1, member: s("KHFT"), period: at(2018, 3), amount_pence: 100, reason: s("Overstated") };
        "more than was paid"           : |r| r.amount_pence = 120_000_000        => Rule("OVER_PAID");
        "i64::MAX"                     : |r| r.amount_pence = i64::MAX           => Rule("OVER_PAID");
        "a quarter never paid"         : |r| r.quarter = 2                       => Rule("OVER_PAID");
        "amount zero"                  : |r| r.amount_pence = 0                  => Invalid("amount_pence");
        "amount negative"              : |r| r.amount_pence = -100               => Invalid("amount_pence");
        "member not a recipient"       : |r| r.member = s("KCHT")                => Rule("NOT_A_PARTNER");
        "member not admitted"          : |r| r.member = s("ZZZZ")                => Rule("MEMBER_NOT_ADMITTED");
        "member malformed"             : |r| r.member = s("KH FT")               => Invalid("member");
        "reason empty"                 : |r| r.reason = s("")                    => Invalid("reason");
        "reason 513 bytes"             : |r| r.reason = long(513)                => Invalid("reason");
        "quarter 9"                    : |r| r.quarter = 9                       => Invalid("quarter");
        "closed period"                : |r| r.period = closed()                 => Rule("PERIOD_CLOSED");
        "fund unknown"                 : |r| r.fund = s("NOPE")                  => NotFound("fund");
    }

    h.finish(&fixture.ledger);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contract_commands_refuse_hostile_input() -> anyhow::Result<()> {
    let fixture = Fixture::start().await?;
    let mut h = fixture.harness();
    let h = &mut h;

    table! { h, "AgreeContract", pb::AgreeContractRequest { meta: meta(), contract: s("C9"), commissioner: s("KCCG"), provider: s("KHFT"), year: 2018, model: model::block(100), description: s("Extra") };
        "contract already exists"      : |r| r.contract = s("C1")                => Exists("contract");
        "contract empty"               : |r| r.contract = s("")                  => Invalid("contract");
        "contract 49 characters"       : |r| r.contract = "C".repeat(49)         => Invalid("contract");
        "model missing"                : |r| r.model = None                      => Invalid("model");
        "model oneof empty"            : |r| r.model = model::none()             => Invalid("model");
        "commissioner is a trust"      : |r| r.commissioner = s("KHFT")          => Rule("NOT_A_COMMISSIONER");
        "commissioner is the council"  : |r| r.commissioner = s("KCC")           => Rule("NOT_A_COMMISSIONER");
        "commissioner not admitted"    : |r| r.commissioner = s("ZZZZ")          => Rule("MEMBER_NOT_ADMITTED");
        "commissioner lowercase"       : |r| r.commissioner = s("kccg")          => Invalid("commissioner");
        "provider is the commissioner" : |r| r.provider = s("KCCG")              => Rule("NOT_A_PROVIDER");
        "provider is the council"      : |r| r.provider = s("KCC")               => Rule("NOT_A_PROVIDER");
        "provider empty"               : |r| r.provider = s("")                  => Invalid("provider");
        "year 1999"                    : |r| r.year = 1999                       => Invalid("year");
        "year before the first year"   : |r| r.year = 2017                       => Invalid("year");
        "description empty"            : |r| r.description = s("")               => Invalid("description");
        "description 513 bytes"        : |r| r.description = long(513)           => Invalid("description");
        "block zero"                   : |r| r.model = model::block(0)           => Invalid("model.block.annual_value_pence");
        "block negative"               : |r| r.model = model::block(-1)          => Invalid("model.block.annual_value_pence");
        "tariff no units"              : |r| r.model = model::tariff(0, 100)     => Invalid("model.activity_tariff.planned_units");
        "tariff price negative"        : |r| r.model = model::tariff(10, -100)   => Invalid("model.activity_tariff.unit_price_pence");
        "tariff units over i64"        : |r| r.model = model::tariff(u64::MAX, 1) => Invalid("model.activity_tariff.planned_units");
        "tariff units × price overflow": |r| r.model = model::tariff(1 << 40, 1 << 30) => Invalid("model.activity_tariff.planned_units");
        "aligned fixed negative"       : |r| r.model = model::aligned(-1, 10, 10, 5000) => Invalid("model.aligned_payment.fixed_pence");
        "aligned price negative"       : |r| r.model = model::aligned(100, 10, -10, 5000) => Invalid("model.aligned_payment.unit_price_pence");
        "aligned units × price overflow": |r| r.model = model::aligned(100, 1 << 40, 1 << 30, 5000) => Invalid("model.aligned_payment.planned_units");
        "aligned no units"             : |r| r.model = model::aligned(100, 0, 10, 5000) => Invalid("model.aligned_payment.planned_units");
        "aligned rate over 100%"       : |r| r.model = model::aligned(100, 10, 10, 10_001) => Invalid("model.aligned_payment.marginal_rate_bp");
        "capitation per head zero"     : |r| r.model = model::capitation(0, 10, 0, 0) => Invalid("model.capitation.per_head_pence");
        "capitation gain over 100%"    : |r| r.model = model::capitation(1, 10, 10_001, 0) => Invalid("model.capitation.gain_share_bp");
        "capitation loss u32::MAX"     : |r| r.model = model::capitation(1, 10, 0, u32::MAX) => Invalid("model.capitation.loss_share_bp");
        "capitation value overflow"    : |r| r.model = model::capitation(i64::MAX, 2, 0, 0) => Invalid("model.capitation.per_head_pence");
        "capitation population > i64"  : |r| r.model = model::capitation(1, u64::MAX, 0, 0) => Invalid("model.capitation.population");
        "cquin base negative"          : |r| r.model = model::cquin(-1, 250)     => Invalid("model.cquin.base_value_pence");
        "cquin rate over 100%"         : |r| r.model = model::cquin(100, 10_001) => Invalid("model.cquin.rate_bp");
    }

    table! { h, "VaryContract", pb::VaryContractRequest { meta: meta(), contract: s("C1"), period: open(), reason: s("Revised"), model: model::block(8_600_000_000) };
        "another payment model"        : |r| r.model = model::tariff(10, 10)     => Rule("WRONG_PAYMENT_MODEL");
        "model missing"                : |r| r.model = None                      => Invalid("model");
        "model oneof empty"            : |r| r.model = model::none()             => Invalid("model");
        "block negative"               : |r| r.model = model::block(-1)          => Invalid("model.block.annual_value_pence");
        "tariff overflow"              : |r| { r.contract = s("C3"); r.model = model::tariff(u64::MAX, 2) } => Invalid("model.activity_tariff.planned_units");
        "reason empty"                 : |r| r.reason = s("")                    => Invalid("reason");
        "reason 513 bytes"             : |r| r.reason = long(513)                => Invalid("reason");
        "closed period"                : |r| r.period = closed()                 => Rule("PERIOD_CLOSED");
        "period outside the year"      : |r| r.period = at(2019, 2)              => Rule("PERIOD_OUTSIDE_YEAR");
        "terminated contract"          : |r| r.contract = s("CT")                => Rule("CONTRACT_TERMINATED");
        "contract unknown"             : |r| r.contract = s("C404")              => NotFound("contract");
        "contract malformed"           : |r| r.contract = s("C 1")               => Invalid("contract");
    }

    table! { h, "RecordActivity", pb::RecordActivityRequest { meta: meta(), contract: s("C3"), period: open(), units: 2000, corrects: None };
        "units u64::MAX"               : |r| r.units = u64::MAX                  => Invalid("units");
        "units × price overflow"       : |r| r.units = 1 << 62                   => Invalid("units");
        "terminated contract"          : |r| r.contract = s("CT")                => Rule("CONTRACT_TERMINATED");
        "closed period"                : |r| r.period = closed()                 => Rule("PERIOD_CLOSED");
        "period outside the year"      : |r| r.period = at(2019, 2)              => Rule("PERIOD_OUTSIDE_YEAR");
        "year 1999"                    : |r| r.period = at(1999, 2)              => Invalid("period.year");
        "before the first year"        : |r| r.period = at(2017, 12)             => Invalid("period");
        "period missing"               : |r| r.period = None                     => Invalid("period");
        "corrects the same period"     : |r| r.corrects = open()                 => Invalid("corrects");
        "corrects month 13"            : |r| r.corrects = at(2018, 13)           => Invalid("corrects.month");
        "corrects another year"        : |r| r.corrects = at(2017, 12)           => Rule("PERIOD_OUTSIDE_YEAR");
        "contract unknown"             : |r| r.contract = s("C404")              => NotFound("contract");
    }

    table! { h, "RaiseInvoice", pb::RaiseInvoiceRequest { meta: meta(), contract: s("C1"), invoice: s("C1-02"), period: open(), amount_pence: 700_000_000, corrects: None };
        "second invoice, same code"    : |r| r.invoice = s("C1-01")              => Exists("invoice");
        "amount zero"                  : |r| r.amount_pence = 0                  => Invalid("amount_pence");
        "amount negative"              : |r| r.amount_pence = -700_000_000       => Invalid("amount_pence");
        "amount i64::MIN"              : |r| r.amount_pence = i64::MIN           => Invalid("amount_pence");
        "invoice empty"                : |r| r.invoice = s("")                   => Invalid("invoice");
        "invoice with a slash"         : |r| r.invoice = s("C1/02")              => Invalid("invoice");
        "invoice 49 characters"        : |r| r.invoice = "I".repeat(49)          => Invalid("invoice");
        "invoice 1 MiB"                : |r| r.invoice = "I".repeat(1 << 20)     => Invalid("invoice");
        "terminated contract"          : |r| r.contract = s("CT")                => Rule("CONTRACT_TERMINATED");
        "closed period"                : |r| r.period = closed()                 => Rule("PERIOD_CLOSED");
        "period outside the year"      : |r| r.period = at(2019, 1)              => Rule("PERIOD_OUTSIDE_YEAR");
        "corrects a later period"      : |r| r.corrects = at(2018, 3)            => Invalid("corrects");
        "contract unknown"             : |r| r.contract = s("C404")              => NotFound("contract");
    }

    table! { h, "RecordPayment", pb::RecordPaymentRequest { meta: meta(), contract: s("C1"), invoice: s("C1-01"), period: open(), amount_pence: 100 };
        "more than outstanding"        : |r| r.amount_pence = 400_000_001        => Rule("OVER_PAID");
        "a penny of D1, withheld"      : |r| r.amount_pence = 399_900_001        => Rule("OVER_PAID");
        "i64::MAX"                     : |r| r.amount_pence = i64::MAX           => Rule("OVER_PAID");
        "amount zero"                  : |r| r.amount_pence = 0                  => Invalid("amount_pence");
        "amount negative"              : |r| r.amount_pence = -1                 => Invalid("amount_pence");
        "invoice unknown"              : |r| r.invoice = s("C1-99")              => NotFound("invoice");
        "invoice empty"                : |r| r.invoice = s("")                   => Invalid("invoice");
        "closed period"                : |r| r.period = closed()                 => Rule("PERIOD_CLOSED");
        "before the first year"        : |r| r.period = at(2017, 12)             => Invalid("period");
        "month 0"                      : |r| r.period = at(2018, 0)              => Invalid("period.month");
        "contract unknown"             : |r| r.contract = s("C404")              => NotFound("contract");
    }

    table! { h, "RaiseDispute", pb::RaiseDisputeRequest { meta: meta(), contract: s("C1"), dispute: s("D3"), invoice: Some(s("C1-01")), period: open(), amount_pence: 100, reason: s("Queried") };
        "dispute already raised"       : |r| r.dispute = s("D1")                 => Exists("dispute");
        "dispute malformed"            : |r| r.dispute = s("D 3")                => Invalid("dispute");
        "invoice unknown"              : |r| r.invoice = Some(s("C1-99"))        => NotFound("invoice");
        "invoice present but empty"    : |r| r.invoice = Some(s(""))             => Invalid("invoice");
        "more than the invoice"        : |r| r.amount_pence = 700_000_001        => Invalid("amount_pence");
        "past unpaid and undisputed"   : |r| r.amount_pence = 399_900_001        => Invalid("amount_pence");
        "amount zero"                  : |r| r.amount_pence = 0                  => Invalid("amount_pence");
        "amount negative"              : |r| r.amount_pence = -1                 => Invalid("amount_pence");
        "reason empty"                 : |r| r.reason = s("")                    => Invalid("reason");
        "reason 513 bytes"             : |r| r.reason = long(513)                => Invalid("reason");
        "reason with a BEL"            : |r| r.reason = s("Queried\u{7}")        => Invalid("reason");
        "terminated contract"          : |r| r.contract = s("CT")                => Rule("CONTRACT_TERMINATED");
        "closed period"                : |r| r.period = closed()                 => Rule("PERIOD_CLOSED");
        "period outside the year"      : |r| r.period = at(2019, 1)              => Rule("PERIOD_OUTSIDE_YEAR");
    }

    table! { h, "ResolveDispute", pb::ResolveDisputeRequest { meta: meta(), contract: s("C1"), dispute: s("D1"), period: open(), provider_keeps_pence: 50_000, resolution: s("Agreed") };
        "already resolved"             : |r| r.dispute = s("D2")                 => Rule("DISPUTE_RESOLVED");
        "dispute unknown"              : |r| r.dispute = s("D404")               => NotFound("dispute");
        "dispute empty"                : |r| r.dispute = s("")                   => Invalid("dispute");
        "keeps negative"               : |r| r.provider_keeps_pence = -1         => Invalid("provider_keeps_pence");
        "keeps i64::MIN"               : |r| r.provider_keeps_pence = i64::MIN   => Invalid("provider_keeps_pence");
        "keeps more than disputed"     : |r| r.provider_keeps_pence = 100_001    => Invalid("provider_keeps_pence");
        "resolution empty"             : |r| r.resolution = s("")                => Invalid("resolution");
        "resolution 513 bytes"         : |r| r.resolution = long(513)            => Invalid("resolution");
        "closed period"                : |r| r.period = closed()                 => Rule("PERIOD_CLOSED");
        "contract unknown"             : |r| r.contract = s("C404")              => NotFound("contract");
    }

    table! { h, "ReconcileCquin", pb::ReconcileCquinRequest { meta: meta(), contract: s("CQ"), period: open(), achievement_bp: 8000 };
        "already reconciled"           : |_| {}                                  => Exists("CQUIN reconciliation");
        "not a CQUIN contract"         : |r| r.contract = s("C1")                => Rule("WRONG_PAYMENT_MODEL");
        "achievement over 100%"        : |r| r.achievement_bp = 10_001           => Invalid("achievement_bp");
        "closed period"                : |r| r.period = closed()                 => Rule("PERIOD_CLOSED");
        "month 0"                      : |r| r.period = at(2018, 0)              => Invalid("period.month");
        "contract unknown"             : |r| r.contract = s("C404")              => NotFound("contract");
    }

    table! { h, "RecordAdjustment", pb::RecordAdjustmentRequest { meta: meta(), contract: s("C1"), period: open(), amount_pence: -100, reason: s("Credit note"), corrects: None };
        "amount zero"                  : |r| r.amount_pence = 0                  => Invalid("amount_pence");
        "reason empty"                 : |r| r.reason = s("")                    => Invalid("reason");
        "reason 513 bytes"             : |r| r.reason = long(513)                => Invalid("reason");
        "reason with a DEL"            : |r| r.reason = s("Credit\u{7f}")        => Invalid("reason");
        "terminated contract"          : |r| r.contract = s("CT")                => Rule("CONTRACT_TERMINATED");
        "closed period"                : |r| r.period = closed()                 => Rule("PERIOD_CLOSED");
        "corrects the same period"     : |r| r.corrects = open()                 => Invalid("corrects");
        "corrects another year"        : |r| r.corrects = at(2017, 12)           => Rule("PERIOD_OUTSIDE_YEAR");
        "contract unknown"             : |r| r.contract = s("C404")              => NotFound("contract");
    }

    table! { h, "TerminateContract", pb::TerminateContractRequest { meta: meta(), contract: s("C1"), period: open(), reason: s("Ended") };
        "already terminated"           : |r| r.contract = s("CT")                => Rule("CONTRACT_TERMINATED");
        "reason empty"                 : |r| r.reason = s("")                    => Invalid("reason");
        "reason 513 bytes"             : |r| r.reason = long(513)                => Invalid("reason");
        "closed period"                : |r| r.period = closed()                 => Rule("PERIOD_CLOSED");
        "period outside the year"      : |r| r.period = at(2019, 1)              => Rule("PERIOD_OUTSIDE_YEAR");
        "period missing"               : |r| r.period = None                     => Invalid("period");
        "contract unknown"             : |r| r.contract = s("C404")              => NotFound("contract");
    }

    h.finish(&fixture.ledger);
    Ok(())
}

// ---- idempotency and expected versions -----------------------------------------------------

/// The other text forms of a UUID (uppercase, simple, braced, URN) name the same request.
fn uuid_forms(request_id: &str) -> Vec<String> {
    let id = Uuid::parse_str(request_id).expect("setup request ids are UUIDs");
    vec![
        id.hyphenated().to_string().to_uppercase(),
        id.simple().to_string(),
        id.braced().to_string(),
        id.urn().to_string(),
    ]
}

fn request_id(command: &pb::Command) -> String {
    let mut command = command.clone();
    with_meta(&mut command, |meta| meta.request_id.clone())
}

/// Applies `f` to the meta of the request inside `command` (which must have one).
fn with_meta<T>(command: &mut pb::Command, f: impl FnOnce(&mut pb::CommandMeta) -> T) -> T {
    macro_rules! meta_of {
        ($($variant:ident),*) => {
            match command.command.as_mut() {
                $(Some(C::$variant(r)) => r.meta.as_mut(),)*
                None => None,
            }
        };
    }
    let meta = meta_of!(
        EstablishSystem,
        AdmitMember,
        AgreePlan,
        SubmitReturn,
        ReportMetric,
        ClosePeriod,
        FileReturn,
        EstablishBudget,
        PledgeContribution,
        PayContribution,
        RecordSpend,
        VaryBudget,
        SettleRiskShare,
        CloseBudget,
        AllocateFund,
        AssessTranche,
        PayTranche,
        ClawBack,
        AgreeContract,
        VaryContract,
        RecordActivity,
        RaiseInvoice,
        RecordPayment,
        RaiseDispute,
        ResolveDispute,
        ReconcileCquin,
        RecordAdjustment,
        TerminateContract
    );
    f(meta.expect("every test command has meta"))
}

/// Every command the setup recorded (one of each of the 28 rpcs), sent again with the same
/// request id — in its own text form and in the other UUID forms — is answered OK with
/// `duplicate: true` and the original outcome, and records nothing. That holds even where the
/// command would now be refused (its period has closed, its invoice exists).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resends_of_every_rpc_are_duplicates_and_record_nothing() -> anyhow::Result<()> {
    let fixture = Fixture::start().await?;
    let mut client = fixture.client.clone();
    let before = head(&mut client).await?;
    let mut resends = 0;
    for (command, original) in &fixture.recorded {
        let rpc = rpc_name(command);
        let mut forms = vec![command.clone()];
        for form in uuid_forms(&request_id(command)) {
            let mut resend = command.clone();
            with_meta(&mut resend, |meta| meta.request_id = form);
            forms.push(resend);
        }
        for resend in forms {
            let id = request_id(&resend);
            let reply = send(&mut client, resend)
                .await
                .map_err(|status| anyhow::anyhow!("{rpc} resent as {id}: refused {status:?}"))?;
            let expected = pb::CommandReply {
                duplicate: true,
                ..original.clone()
            };
            assert_eq!(
                reply, expected,
                "{rpc} resent as {id}: not the original outcome"
            );
            resends += 1;
        }
    }
    assert_eq!(resends, fixture.recorded.len() * 5);
    let after = head(&mut client).await?;
    assert_eq!(head_of(&after), head_of(&before), "resends moved the head");
    Ok(())
}

/// Every event of one stream through `ReadStream`, or its refusal.
async fn read_stream(
    client: &mut Client,
    stream: &str,
    from_version: u64,
    limit: u64,
) -> Result<Vec<pb::RecordedEvent>, Status> {
    use futures::StreamExt;
    let mut events = client
        .read_stream(pb::ReadStreamRequest {
            stream: stream.to_string(),
            from_version,
            limit,
        })
        .await?
        .into_inner();
    let mut read = Vec::new();
    while let Some(event) = events.next().await {
        read.push(event?);
    }
    Ok(read)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_stream_refuses_bad_streams_and_reads_return_what_was_asked() -> anyhow::Result<()> {
    let fixture = Fixture::start().await?;
    let mut client = fixture.client.clone();
    let before = head(&mut client).await?;
    let code_1_mib = format!("contract/{}", "A".repeat(1 << 20));
    let cases = [
        ("stream empty", "", Invalid("stream")),
        ("no kind", "KHFT", Invalid("stream")),
        ("kind unknown", "pool/BCF", Invalid("stream")),
        ("code empty", "contract/", Invalid("stream")),
        ("code with a space", "contract/C 1", Invalid("stream")),
        ("code with a NATS wildcard", "contract/>", Invalid("stream")),
        ("code 1 MiB", code_1_mib.as_str(), Invalid("stream")),
        ("stream with a NUL", "system\0", Invalid("stream")),
        ("contract never agreed", "contract/ZZZZ", NotFound("stream")),
        (
            "budget never established",
            "budget/ZZZZ",
            NotFound("stream"),
        ),
        ("fund never allocated", "fund/ZZZZ", NotFound("stream")),
    ];
    let mut failures = Vec::new();
    for (case, stream, expect) in cases {
        match read_stream(&mut client, stream, 0, 0).await {
            Ok(events) => failures.push(format!("{case}: read {} events", events.len())),
            Err(status) => {
                failures.extend(check(&status, expect).err().map(|e| format!("{case}: {e}")))
            }
        }
    }
    assert!(
        failures.is_empty(),
        "ReadStream refusals:\n  {}",
        failures.join("\n  ")
    );

    // What is read is what was recorded: each stream's events in ReadAll, in version order.
    let all = e2e::read_all(&mut client).await?;
    assert_eq!(all.len() as u64, before.sequence);
    let streams: std::collections::BTreeSet<&str> = all.iter().map(|e| e.stream.as_str()).collect();
    assert!(
        streams.len() >= 4,
        "the fixture records several streams: {streams:?}"
    );
    for stream in streams {
        let expected: Vec<&pb::RecordedEvent> = all.iter().filter(|e| e.stream == stream).collect();
        let read = read_stream(&mut client, stream, 0, 0).await?;
        assert_eq!(
            read.iter().collect::<Vec<_>>(),
            expected,
            "ReadStream {stream}"
        );
        let versions: Vec<u64> = read.iter().map(|e| e.version).collect();
        assert_eq!(
            versions,
            (1..=read.len() as u64).collect::<Vec<_>>(),
            "{stream}"
        );
    }
    let system: Vec<pb::RecordedEvent> = all
        .iter()
        .filter(|e| e.stream == "system")
        .cloned()
        .collect();
    assert!(
        system.len() >= 6,
        "the system stream has {} events",
        system.len()
    );
    let window = read_stream(&mut client, "system", 2, 3).await?;
    assert_eq!(window, system[1..4], "from version 2, three events");
    let past_the_end = read_stream(&mut client, "system", system.len() as u64 + 1, 0).await?;
    assert!(past_the_end.is_empty(), "nothing after the last version");

    let window = e2e::read_log(&mut client, 5, 3).await?;
    assert_eq!(window, all[4..7], "ReadAll from sequence 5, three events");
    let past_the_head = e2e::read_log(&mut client, before.sequence + 1, 0).await?;
    assert!(past_the_head.is_empty(), "nothing after the head");

    let after = head(&mut client).await?;
    assert_eq!(head_of(&after), head_of(&before), "reads moved the head");
    Ok(())
}

fn invoice(code: &str, period: Option<pb::Period>) -> pb::RaiseInvoiceRequest {
    pb::RaiseInvoiceRequest {
        meta: meta(),
        contract: s("C1"),
        invoice: s(code),
        period,
        amount_pence: 1_000,
        corrects: None,
    }
}

/// A refused command does not use up its request id; expected versions are checked against
/// the stream's current version (a correct one is accepted, a stale one is ABORTED, 0 means
/// "must not exist yet"); reusing a request id for another command is ALREADY_EXISTS even
/// when the other command is valid.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_ids_and_expected_versions() -> anyhow::Result<()> {
    let fixture = Fixture::start().await?;
    let mut h = fixture.harness();
    let mut client = fixture.client.clone();

    // Refused first (closed period), then the same id with a valid command: accepted.
    let refused = invoice("RID-1", closed());
    let id = refused.meta.clone();
    h.refuse(
        "RaiseInvoice",
        "in a closed period",
        refused.into_command(),
        Rule("PERIOD_CLOSED"),
    )
    .await?;
    let valid = pb::RaiseInvoiceRequest {
        meta: id.clone(),
        ..invoice("RID-1", open())
    };
    let first = send(&mut client, valid.clone().into_command()).await?;
    assert!(!first.duplicate, "a refused command used up its request id");
    let again = send(&mut client, valid.clone().into_command()).await?;
    assert_eq!(
        again,
        pb::CommandReply {
            duplicate: true,
            ..first.clone()
        }
    );
    // A retry is recognised before its expected version is checked: the version it expected
    // is stale now (its own write moved the stream), and it still gets the original outcome.
    let mut retry = valid.clone();
    if let Some(meta) = retry.meta.as_mut() {
        meta.expected_version = Some(first.first_version - 1);
    }
    let again = send(&mut client, retry.into_command()).await?;
    assert!(again.duplicate && again.hash == first.hash, "{again:?}");

    // The same id with a different (valid) command: ALREADY_EXISTS, nothing recorded.
    let other = pb::RaiseInvoiceRequest {
        meta: id.clone(),
        ..invoice("RID-2", open())
    };
    h.refuse(
        "RaiseInvoice",
        "request id reused, other invoice",
        other.into_command(),
        Reused,
    )
    .await?;
    let changed_amount = pb::RaiseInvoiceRequest {
        amount_pence: 1_001,
        ..valid.clone()
    };
    h.refuse(
        "RaiseInvoice",
        "request id reused, other amount",
        changed_amount.into_command(),
        Reused,
    )
    .await?;

    // Expected versions: contract/C1 is at `first.last_version`.
    let version = first.last_version;
    let expecting = |code: &str, expected_version: u64| {
        let mut request = invoice(code, open());
        if let Some(meta) = request.meta.as_mut() {
            meta.expected_version = Some(expected_version);
        }
        request.into_command()
    };
    for (case, expected) in [
        ("one behind", version - 1),
        ("one ahead", version + 1),
        ("0 for an existing stream", 0),
        ("u64::MAX", u64::MAX),
    ] {
        h.refuse("RaiseInvoice", case, expecting("RID-3", expected), Conflict)
            .await?;
    }
    let current = send(&mut client, expecting("RID-3", version)).await?;
    assert_eq!(current.last_version, version + 1);
    h.refuse(
        "RaiseInvoice",
        "the version before the last write",
        expecting("RID-4", version),
        Conflict,
    )
    .await?;
    // 0 means "the stream must not exist yet": right for a new contract.
    let mut new_contract = pb::AgreeContractRequest {
        meta: meta(),
        contract: s("C-NEW"),
        commissioner: s("KCCG"),
        provider: s("KHFT"),
        year: 2018,
        model: model::block(100),
        description: s("New"),
    };
    if let Some(meta) = new_contract.meta.as_mut() {
        meta.expected_version = Some(0);
    }
    let created = send(&mut client, new_contract.clone().into_command()).await?;
    assert_eq!(
        (created.stream.as_str(), created.first_version),
        ("contract/C-NEW", 1)
    );
    new_contract.meta = new_contract.meta.map(|m| pb::CommandMeta {
        request_id: Uuid::new_v4().to_string(),
        ..m
    });
    h.refuse(
        "AgreeContract",
        "0 once the stream exists",
        new_contract.into_command(),
        Conflict,
    )
    .await?;

    h.finish(&fixture.ledger);
    Ok(())
}

// ---- SubmitBulk ----------------------------------------------------------------------------

fn bulk_invoice(code: &str) -> pb::Command {
    invoice(code, open()).into_command()
}

/// A bulk call refused at command `index`: the status names it (`command N:`, and
/// `commands[N].` in a BadRequest field), the commands before it are recorded (resending them
/// gives duplicates) and the ones after it are not (sending them now records them).
async fn bulk_refusal(
    h: &mut Harness,
    case: &str,
    commands: Vec<pb::Command>,
    index: usize,
    expect: Expect,
) -> anyhow::Result<()> {
    h.cases += 1;
    let mut client = h.client.clone();
    let before = head(&mut client).await?;
    let result = client
        .submit_bulk(futures::stream::iter(commands.clone()))
        .await;
    let after = head(&mut client).await?;
    let mut problems = Vec::new();
    match &result {
        Ok(reply) => problems.push(format!("accepted ({reply:?}), expected {expect:?}")),
        Err(status) => {
            problems.extend(check(status, expect).err());
            let prefix = format!("command {index}: ");
            if !status.message().starts_with(&prefix) {
                problems.push(format!(
                    "the message '{}' does not start '{prefix}'",
                    status.message()
                ));
            }
        }
    }
    if after.sequence != before.sequence + index as u64 {
        problems.push(format!(
            "the head moved from {} to {}, not by the {index} commands before the refusal",
            before.sequence, after.sequence
        ));
    }
    for (i, command) in commands.into_iter().enumerate() {
        let rpc = rpc_name(&command);
        match (i, send(&mut client, command).await) {
            (i, Ok(reply)) if i < index && !reply.duplicate => {
                problems.push(format!(
                    "command {i} ({rpc}) before the refusal was not recorded"
                ));
            }
            (i, Ok(reply)) if i > index && reply.duplicate => {
                problems.push(format!(
                    "command {i} ({rpc}) after the refusal was recorded"
                ));
            }
            (i, Err(status)) if i != index => {
                problems.push(format!(
                    "command {i} ({rpc}) sent alone was refused: {status:?}"
                ));
            }
            _ => {}
        }
    }
    if !problems.is_empty() {
        h.failures
            .push(format!("SubmitBulk / {case}: {}", problems.join("; ")));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_stops_at_the_first_refused_command() -> anyhow::Result<()> {
    let fixture = Fixture::start().await?;
    let mut h = fixture.harness();
    let h = &mut h;
    let recorded_id = h.recorded_id.clone();
    let payment = |amount_pence: i64| {
        pb::RecordPaymentRequest {
            meta: meta(),
            contract: s("C1"),
            invoice: s("C1-01"),
            period: open(),
            amount_pence,
        }
        .into_command()
    };
    let bad_month = invoice("B-3", at(2018, 13)).into_command();
    let no_meta = pb::RaiseInvoiceRequest {
        meta: None,
        ..invoice("B-8", open())
    }
    .into_command();
    let reused = pb::RaiseInvoiceRequest {
        meta: Some(pb::CommandMeta {
            request_id: recorded_id,
            ..Default::default()
        }),
        ..invoice("B-10", open())
    }
    .into_command();
    let mut stale = bulk_invoice("B-11");
    with_meta(&mut stale, |meta| meta.expected_version = Some(1_000_000));
    let unknown_contract = pb::RaiseInvoiceRequest {
        contract: s("C404"),
        ..invoice("B-12", open())
    };
    let b17 = bulk_invoice("B-17");
    let mut same_id = bulk_invoice("B-19");
    with_meta(&mut same_id, |meta| meta.request_id = request_id(&b17));

    #[rustfmt::skip]
    let cases = vec![
        ("malformed in the middle", vec![bulk_invoice("B-1"), bulk_invoice("B-2"), bad_month, bulk_invoice("B-4")], 2, Invalid("commands[2].period.month")),
        ("refused by a domain check", vec![bulk_invoice("B-5"), payment(0), bulk_invoice("B-6")], 1, Invalid("commands[1].amount_pence")),
        ("refused by a business rule", vec![bulk_invoice("B-7"), payment(400_000_001)], 1, Rule("OVER_PAID")),
        ("missing meta", vec![no_meta], 0, Invalid("commands[0].meta")),
        ("an empty Command", vec![bulk_invoice("B-9"), pb::Command { command: None }], 1, Invalid("commands[1].command")),
        ("request id reused", vec![bulk_invoice("B-13"), reused], 1, Reused),
        ("stale expected version", vec![stale], 0, Conflict),
        ("unknown contract", vec![bulk_invoice("B-14"), unknown_contract.into_command()], 1, NotFound("contract")),
        ("a duplicate of an earlier command in the call", vec![bulk_invoice("B-15"), bulk_invoice("B-15")], 1, Exists("invoice")),
        ("one request id for two commands in the call", vec![b17, same_id], 1, Reused),
        ("pledges overflow", vec![bulk_invoice("B-18"), pledge("BCF", "KCC", i64::MAX, None)], 1, Invalid("commands[1].amount_pence")),
        ("a return filed beyond the head", vec![bulk_invoice("B-20"), filed_return(1_000_000)], 1, Invalid("commands[1].as_of_sequence")),
    ];
    for (case, commands, index, expect) in cases {
        bulk_refusal(h, case, commands, index, expect).await?;
    }

    // Not refusals: the same request twice in one call is one record and one duplicate.
    let twice = bulk_invoice("B-16");
    let mut client = h.client.clone();
    let reply = client
        .submit_bulk(futures::stream::iter(vec![twice.clone(), twice]))
        .await?
        .into_inner();
    assert_eq!((reply.accepted, reply.duplicates), (1, 1), "{reply:?}");
    // Nor is a return filed at the sequence of a command earlier in the same call, not yet
    // flushed when the return is decided.
    let at = head(&mut client).await?.sequence + 1;
    let reply = client
        .submit_bulk(futures::stream::iter(vec![
            bulk_invoice("B-21"),
            filed_return(at),
        ]))
        .await?
        .into_inner();
    assert_eq!(
        (reply.accepted, reply.last_sequence),
        (2, at + 1),
        "{reply:?}"
    );
    // Nor is an empty call.
    let before = head(&mut client).await?;
    let reply = client
        .submit_bulk(futures::stream::iter(Vec::<pb::Command>::new()))
        .await?
        .into_inner();
    assert_eq!((reply.accepted, reply.duplicates), (0, 0), "{reply:?}");
    assert_eq!(head_of(&head(&mut client).await?), head_of(&before));

    h.finish(&fixture.ledger);
    Ok(())
}

// ---- bytes no client would build -----------------------------------------------------------

/// Sends request bodies as given bytes, and decodes replies as `T`.
struct RawCodec<T>(PhantomData<T>);

struct RawEncoder;

struct ReplyDecoder<T>(PhantomData<T>);

impl<T: Message + Default + Send + 'static> Codec for RawCodec<T> {
    type Encode = Vec<u8>;
    type Decode = T;
    type Encoder = RawEncoder;
    type Decoder = ReplyDecoder<T>;

    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }

    fn decoder(&mut self) -> ReplyDecoder<T> {
        ReplyDecoder(PhantomData)
    }
}

impl Encoder for RawEncoder {
    type Item = Vec<u8>;
    type Error = Status;

    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl<T: Message + Default> Decoder for ReplyDecoder<T> {
    type Item = T;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<T>, Status> {
        T::decode(src)
            .map(Some)
            .map_err(|e| Status::internal(e.to_string()))
    }
}

async fn raw_grpc(
    ledger: &Ledgerd,
    method: &str,
) -> anyhow::Result<(tonic::client::Grpc<Channel>, PathAndQuery)> {
    let channel = Channel::from_shared(ledger.url())?.connect().await?;
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await?;
    let path = format!("/ics.ledger.v1.LedgerService/{method}").parse()?;
    Ok((grpc, path))
}

/// One unary call with `body` as the request message's bytes.
async fn raw_unary(
    ledger: &Ledgerd,
    method: &str,
    body: Vec<u8>,
) -> anyhow::Result<Result<pb::CommandReply, Status>> {
    let (mut grpc, path) = raw_grpc(ledger, method).await?;
    let reply = grpc
        .unary(tonic::Request::new(body), path, RawCodec(PhantomData))
        .await;
    Ok(reply.map(tonic::Response::into_inner))
}

/// One SubmitBulk call with `bodies` as the bytes of its messages.
async fn raw_bulk(
    ledger: &Ledgerd,
    bodies: Vec<Vec<u8>>,
) -> anyhow::Result<Result<pb::BulkReply, Status>> {
    let (mut grpc, path) = raw_grpc(ledger, "SubmitBulk").await?;
    let reply = grpc
        .client_streaming(
            tonic::Request::new(futures::stream::iter(bodies)),
            path,
            RawCodec(PhantomData),
        )
        .await;
    Ok(reply.map(tonic::Response::into_inner))
}

/// After a hostile request the server still serves: a valid command is recorded.
async fn still_serving(client: &mut Client, case: &str) -> anyhow::Result<()> {
    let probe = pb::ReportMetricRequest {
        meta: meta(),
        member: s("KHFT"),
        period: open(),
        metric: pb::Metric::EmergencyAdmissions.into(),
        value: 1,
    };
    let reply = send(client, probe.into_command()).await.map_err(|status| {
        anyhow::anyhow!("after {case}: a valid command was refused: {status:?}")
    })?;
    anyhow::ensure!(!reply.duplicate, "after {case}: the probe was a duplicate");
    Ok(())
}

/// The code a request over the 4 MiB message limit gets (`ledger.proto`,
/// `Config::grpc_message_bytes_max`).
const OVERSIZED: Code = Code::ResourceExhausted;

/// Request bodies that are not the request message: refused INVALID_ARGUMENT, naming the
/// field that does not decode (the whole request, `""`, when no field can be named; `meta` for
/// bytes that decode to a request without one), nothing recorded, and the server keeps
/// serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_bodies_are_refused_and_the_server_keeps_serving() -> anyhow::Result<()> {
    let fixture = Fixture::start().await?;
    let mut client = fixture.client.clone();
    let mut failures = Vec::new();
    let with_meta = |tail: &[u8]| {
        let mut body = pb::AdmitMemberRequest {
            meta: meta(),
            ..Default::default()
        }
        .encode_to_vec();
        body.extend_from_slice(tail);
        body
    };
    let close_period = pb::ClosePeriodRequest {
        meta: meta(),
        period: open(),
    }
    .encode_to_vec();

    #[rustfmt::skip]
    let cases: Vec<(&str, Vec<u8>, Expect)> = vec![
        ("sixteen 0xff bytes", vec![0xff; 16], Invalid("")),
        ("a field longer than the body", vec![0x0a, 0x7f, 0x01], Invalid("meta")),
        ("meta sent as a fixed32", vec![0x0d, 1, 2, 3, 4], Invalid("meta")),
        ("field number 0", vec![0x00, 0x01], Invalid("")),
        ("a group that never ends", vec![0x0b], Invalid("meta")),
        ("a varint of 11 bytes", [&[0x20][..], &[0xff; 10], &[0x01]].concat(), Invalid("kind")),
        ("member not UTF-8", with_meta(&[0x12, 0x02, 0xff, 0xfe]), Invalid("member")),
        ("a ClosePeriodRequest", close_period, Invalid("member")),
        ("an empty body", Vec::new(), Invalid("meta")),
        ("only unknown fields", vec![0xf8, 0x06, 0x01], Invalid("meta")),
        ("kind 2^31-1 as a varint", [with_meta(&[]), vec![0x12, 0x02, b'G', b'B', 0x1a, 0x01, b'x', 0x20, 0xff, 0xff, 0xff, 0xff, 0x07]].concat(), Invalid("kind")),
    ];
    for (case, body, expect) in cases {
        let before = head(&mut client).await?;
        let result = raw_unary(&fixture.ledger, "AdmitMember", body).await?;
        match &result {
            Ok(reply) => failures.push(format!("{case}: accepted {reply:?}")),
            Err(status) => {
                failures.extend(check(status, expect).err().map(|e| format!("{case}: {e}")))
            }
        }
        if head_of(&head(&mut client).await?) != head_of(&before) {
            failures.push(format!("{case}: the head moved"));
        }
        still_serving(&mut client, case).await?;
    }

    // Garbage inside a bulk call: the commands before it are recorded, the call ends there.
    let before = head(&mut client).await?;
    let first = bulk_invoice("G-1");
    let encode = |command: &pb::Command| command.encode_to_vec();
    let result = raw_bulk(
        &fixture.ledger,
        vec![encode(&first), vec![0xff; 16], encode(&bulk_invoice("G-3"))],
    )
    .await?;
    match &result {
        Err(status) if status.message().starts_with("command 1: ") => failures.extend(
            check(status, Invalid("commands[1]"))
                .err()
                .map(|e| format!("garbage in SubmitBulk: {e}")),
        ),
        other => failures.push(format!(
            "garbage in SubmitBulk: expected INVALID_ARGUMENT 'command 1: …', got {other:?}"
        )),
    }
    let after = head(&mut client).await?;
    if after.sequence != before.sequence + 1 {
        failures.push(format!(
            "garbage in SubmitBulk: the head moved from {} to {}, not by 1",
            before.sequence, after.sequence
        ));
    }
    let resent = send(&mut client, first).await?;
    if !resent.duplicate {
        failures.push("garbage in SubmitBulk: the command before it was not recorded".to_string());
    }
    still_serving(&mut client, "garbage in SubmitBulk").await?;

    assert!(
        failures.is_empty(),
        "garbage bodies:\n  {}\nledgerd log tail:\n{}",
        failures.join("\n  "),
        fixture.ledger.log_tail()
    );
    Ok(())
}

/// A SubmitReturn whose balances list is `n` copies of one counterparty (about 10 bytes each).
fn return_with_balances(n: usize) -> pb::SubmitReturnRequest {
    pb::SubmitReturnRequest {
        meta: meta(),
        member: s("KHFT"),
        period: open(),
        income_pence: 1,
        expenditure_pence: 1,
        balances: vec![balance("KCCG", 1); n],
    }
}

/// Requests over the 4 MiB message limit are refused before they are decoded, nothing is
/// recorded and the server keeps serving; an enormous request under the limit is decoded and
/// refused by validation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_requests_are_refused_and_the_server_keeps_serving() -> anyhow::Result<()> {
    let fixture = Fixture::start().await?;
    let mut client = fixture.client.clone();
    let mut failures = Vec::new();
    let limit = 4 * 1024 * 1024;

    let huge_return = return_with_balances(600_000);
    let huge_name = pb::AdmitMemberRequest {
        meta: meta(),
        member: s("BIG"),
        name: long(limit + 1),
        kind: pb::MemberKind::AcuteTrust.into(),
        in_control_total: true,
    };
    anyhow::ensure!(huge_return.encoded_len() > limit && huge_name.encoded_len() > limit);
    for (case, command) in [
        (
            "SubmitReturn with 600,000 balances",
            huge_return.into_command(),
        ),
        ("AdmitMember with a 4 MiB name", huge_name.into_command()),
    ] {
        let before = head(&mut client).await?;
        match send(&mut client, command).await {
            Err(status)
                if status.code() == OVERSIZED && status.message().contains("the limit is") => {}
            other => failures.push(format!("{case}: expected {OVERSIZED:?}, got {other:?}")),
        }
        if head_of(&head(&mut client).await?) != head_of(&before) {
            failures.push(format!("{case}: the head moved"));
        }
        still_serving(&mut client, case).await?;
    }

    // Over the limit inside a bulk call: the command before it is recorded.
    let before = head(&mut client).await?;
    let first = bulk_invoice("O-1");
    let bulk = vec![
        first.clone(),
        return_with_balances(600_000).into_command(),
        bulk_invoice("O-3"),
    ];
    match client.submit_bulk(futures::stream::iter(bulk)).await {
        Err(status)
            if status.code() == OVERSIZED && status.message().starts_with("command 1: ") => {}
        other => failures.push(format!(
            "oversized in SubmitBulk: expected {OVERSIZED:?} 'command 1: …', got {other:?}"
        )),
    }
    let after = head(&mut client).await?;
    if after.sequence != before.sequence + 1 {
        failures.push(format!(
            "oversized in SubmitBulk: the head moved from {} to {}, not by 1",
            before.sequence, after.sequence
        ));
    }
    if !send(&mut client, first).await?.duplicate {
        failures
            .push("oversized in SubmitBulk: the command before it was not recorded".to_string());
    }
    still_serving(&mut client, "oversized in SubmitBulk").await?;

    // Just under the limit: decoded, and refused for what it says (more balances than a
    // system has members).
    let mut h = fixture.harness();
    let under = return_with_balances(350_000);
    anyhow::ensure!(under.encoded_len() < limit);
    h.refuse(
        "SubmitReturn",
        "350,000 balances (3.5 MB)",
        under.into_command(),
        Invalid("balances"),
    )
    .await?;
    failures.append(&mut h.failures);

    assert!(
        failures.is_empty(),
        "oversized requests:\n  {}\nledgerd log tail:\n{}",
        failures.join("\n  "),
        fixture.ledger.log_tail()
    );
    Ok(())
}
