//! `PositionService` over the shared projection.
//!
//! Every report is one question — a year, a month (year to date) and a point in the log —
//! asked of the domain projection the consumer keeps up to date: the request is checked
//! ([`api::report`]: `INVALID_ARGUMENT` naming the field), the point is checked against how
//! far positiond has folded (`FAILED_PRECONDITION` saying how far), and the report is taken
//! from a snapshot of the projection under the read lock. The lock is released before the
//! report is converted and its fingerprint computed, and is never held across an `.await`.

use api::position_pb as pb;
use api::position_pb::position_service_server::PositionService;
use api::report::{
    Question, ReportToProto, aob_question, check_as_of, consolidation_question,
    question_from_proto, status_from_report,
};
use auth::Scope;
use domain::position::{Recorded, ReportError, Snapshot};
use tonic::{Request, Response, Status};

use follow::consumer::Shared;
use follow::parked::ParkedMessages;
use follow::status::StatusReceiver;

use crate::position::Position;

/// The gRPC service: reads the projection the consumer keeps up to date.
pub struct PositionApi {
    system: String,
    shared: Shared<Position>,
    /// Messages refused from NATS, counted in the status.
    parked: ParkedMessages,
    /// The consumer's troubles (lost, stuck), reported in the status.
    status: StatusReceiver,
    /// Checks bearer tokens; `None`: authentication is off.
    verifier: Option<auth::Verifier>,
}

impl PositionApi {
    pub fn new(
        system: String,
        shared: Shared<Position>,
        parked: ParkedMessages,
        status: StatusReceiver,
    ) -> Self {
        PositionApi {
            system,
            shared,
            parked,
            status,
            verifier: None,
        }
    }

    /// Requires a valid bearer token on every RPC; a member's finance team sees only its own
    /// member (and the system totals) and its own contracts.
    pub fn with_auth(self, verifier: auth::Verifier) -> Self {
        PositionApi {
            verifier: Some(verifier),
            ..self
        }
    }

    /// How much of `read` the caller may see (`UNAUTHENTICATED` / `PERMISSION_DENIED`).
    #[allow(clippy::result_large_err)] // tonic::Status is what every handler returns
    fn scope<R>(&self, request: &Request<R>, read: auth::Read) -> Result<Scope, Status> {
        auth::grpc::may_read(
            self.verifier.as_ref(),
            request,
            read,
            jiff::Timestamp::now().as_second(),
        )
    }

    /// Takes the report `report` asks of the snapshot at `question.as_of`, and converts it.
    #[allow(clippy::result_large_err)] // tonic::Status is what every handler returns
    fn answer<R: ReportToProto>(
        &self,
        rpc: &'static str,
        question: Question,
        report: impl FnOnce(&Snapshot<'_>) -> Result<R, ReportError>,
    ) -> Result<Response<R::Proto>, Status> {
        // Under the read lock: the check and the report, nothing else.
        let (taken, folded) = {
            let folded = self
                .shared
                .read()
                .map_err(|_| Status::internal("the projection's lock is poisoned"))?;
            let at = Recorded {
                sequence: folded.sequence,
                recorded_at_us: folded.recorded_at_us,
            };
            check_as_of(question.as_of, at)?;
            let taken = folded
                .projection
                .projection()
                .at(question.as_of)
                .and_then(|snapshot| report(&snapshot));
            (taken, at)
        };
        let report = taken.map_err(|error| {
            tracing::debug!(rpc, %error, "report refused");
            status_from_report(&error, folded)
        })?;
        let proto = report.to_proto().map_err(|error| {
            tracing::error!(rpc, %error, "report has no canonical bytes");
            Status::internal(format!("the report has no fingerprint: {error}"))
        })?;
        Ok(Response::new(proto))
    }
}

/// `INVALID_ARGUMENT` naming the field, with a `BadRequest` detail.
fn invalid(error: &domain::DomainError) -> Status {
    api::status_from_domain(error)
}

#[tonic::async_trait]
impl PositionService for PositionApi {
    async fn get_status(
        &self,
        request: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusReply>, Status> {
        self.scope(&request, auth::Read::Status)?;
        let status = self.status.borrow().clone();
        let stuck = status.stuck.values().next();
        let folded = self
            .shared
            .read()
            .map_err(|_| Status::internal("the projection's lock is poisoned"))?;
        Ok(Response::new(pb::StatusReply {
            stuck_sequence: stuck.map_or(0, |s| s.sequence),
            stuck_reason: stuck.map(|s| s.reason.clone()).unwrap_or_default(),
            consumer_error: status
                .consumer
                .as_ref()
                .map(|t| t.reason.clone())
                .unwrap_or_default(),
            consumer_error_since_us: status.consumer.as_ref().map_or(0, |t| t.since_us),
            system: self.system.clone(),
            sequence: folded.sequence,
            hash: if folded.sequence == 0 {
                Vec::new()
            } else {
                folded.hash.to_vec()
            },
            recorded_at_us: folded.recorded_at_us,
            parked: self.parked.count(),
        }))
    }

    async fn get_position(
        &self,
        request: Request<pb::ReportRequest>,
    ) -> Result<Response<pb::PositionReport>, Status> {
        let scope = self.scope(&request, auth::Read::Position)?;
        let question = question_from_proto(request.into_inner()).map_err(|e| invalid(&e))?;
        self.answer("GetPosition", question, |s| {
            let mut report = s.position(question.year, question.month)?;
            if let Scope::Member(member) = scope {
                report.limit_to(member);
            }
            Ok(report)
        })
    }

    async fn get_consolidation(
        &self,
        request: Request<pb::ConsolidationRequest>,
    ) -> Result<Response<pb::ConsolidationReport>, Status> {
        self.scope(&request, auth::Read::Statements)?;
        let (question, scope) =
            consolidation_question(request.into_inner()).map_err(|e| invalid(&e))?;
        self.answer("GetConsolidation", question, |s| {
            s.consolidation(question.year, question.month, scope)
        })
    }

    async fn get_pooled_budgets(
        &self,
        request: Request<pb::ReportRequest>,
    ) -> Result<Response<pb::PooledBudgetStatement>, Status> {
        self.scope(&request, auth::Read::Statements)?;
        let question = question_from_proto(request.into_inner()).map_err(|e| invalid(&e))?;
        self.answer("GetPooledBudgets", question, |s| {
            s.pooled_budgets(question.year, question.month)
        })
    }

    async fn get_contracts(
        &self,
        request: Request<pb::ReportRequest>,
    ) -> Result<Response<pb::ContractStatement>, Status> {
        let scope = self.scope(&request, auth::Read::Contracts)?;
        let question = question_from_proto(request.into_inner()).map_err(|e| invalid(&e))?;
        self.answer("GetContracts", question, |s| {
            let mut report = s.contracts_statement(question.year, question.month)?;
            if let Scope::Member(member) = scope {
                report.limit_to(member);
            }
            Ok(report)
        })
    }

    async fn get_funds(
        &self,
        request: Request<pb::ReportRequest>,
    ) -> Result<Response<pb::FundStatement>, Status> {
        self.scope(&request, auth::Read::Statements)?;
        let question = question_from_proto(request.into_inner()).map_err(|e| invalid(&e))?;
        self.answer("GetFunds", question, |s| {
            s.funds_statement(question.year, question.month)
        })
    }

    async fn get_agreement_of_balances(
        &self,
        request: Request<pb::AgreementOfBalancesRequest>,
    ) -> Result<Response<pb::AgreementOfBalances>, Status> {
        self.scope(&request, auth::Read::Statements)?;
        let (question, options) = aob_question(request.into_inner()).map_err(|e| invalid(&e))?;
        self.answer("GetAgreementOfBalances", question, |s| {
            s.agreement_of_balances(question.year, question.month, options)
        })
    }

    async fn get_adjustments(
        &self,
        request: Request<pb::ReportRequest>,
    ) -> Result<Response<pb::AdjustmentsReport>, Status> {
        self.scope(&request, auth::Read::Statements)?;
        let question = question_from_proto(request.into_inner()).map_err(|e| invalid(&e))?;
        self.answer("GetAdjustments", question, |s| {
            s.adjustments(question.year, question.month)
        })
    }
}
