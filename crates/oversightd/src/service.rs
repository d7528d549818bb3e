//! `OversightService` over the shared fleet.

use api::oversight_pb as pb;
use api::oversight_pb::oversight_service_server::OversightService;
use follow::fleet::{Fleet, ReceivedCheckpoints, SharedFleet};
use follow::parked::ParkedMessages;
use follow::status::StatusReceiver;
use tonic::{Request, Response, Status};

use crate::report::{self, PerformanceQuery, RankingQuery};
use crate::view::SystemView;

/// The gRPC service: reads the fleet the consumer keeps up to date.
pub struct OversightApi {
    shared: SharedFleet<SystemView>,
    /// The signed checkpoints received from every ledger.
    received: ReceivedCheckpoints,
    /// Messages refused from NATS, counted in `ListSystems`.
    parked: ParkedMessages,
    /// The consumer's troubles (lost, systems stuck), reported in `ListSystems`.
    status: StatusReceiver,
    /// Checks bearer tokens (signed with the regulator's key); `None`: authentication is off.
    verifier: Option<auth::Verifier>,
}

impl OversightApi {
    pub fn new(
        shared: SharedFleet<SystemView>,
        received: ReceivedCheckpoints,
        parked: ParkedMessages,
        status: StatusReceiver,
    ) -> Self {
        OversightApi {
            shared,
            received,
            parked,
            status,
            verifier: None,
        }
    }

    /// Requires on every RPC a valid bearer token whose role may read oversight (the
    /// regulator, auditors).
    pub fn with_auth(self, verifier: auth::Verifier) -> Self {
        OversightApi {
            verifier: Some(verifier),
            ..self
        }
    }

    #[allow(clippy::result_large_err)] // tonic::Status is what every handler returns
    fn check<R>(&self, request: &Request<R>) -> Result<(), Status> {
        auth::grpc::may_read(
            self.verifier.as_ref(),
            request,
            auth::Read::Oversight,
            jiff::Timestamp::now().as_second(),
        )
        .map(|_| ())
    }

    fn read(&self) -> Result<std::sync::RwLockReadGuard<'_, Fleet<SystemView>>, Status> {
        self.shared
            .read()
            .map_err(|_| Status::internal("the fleet's lock is poisoned"))
    }
}

#[tonic::async_trait]
impl OversightService for OversightApi {
    async fn list_systems(
        &self,
        request: Request<pb::ListSystemsRequest>,
    ) -> Result<Response<pb::ListSystemsReply>, Status> {
        self.check(&request)?;
        let status = self.status.borrow().clone();
        let mut reply = report::list_systems(&*self.read()?, &status);
        reply.parked = self.parked.count();
        Ok(Response::new(reply))
    }

    async fn get_performance(
        &self,
        request: Request<pb::PerformanceRequest>,
    ) -> Result<Response<pb::PerformanceReport>, Status> {
        self.check(&request)?;
        let query = PerformanceQuery::from_proto(request.get_ref())?;
        Ok(Response::new(report::performance(&*self.read()?, &query)?))
    }

    async fn get_ranking(
        &self,
        request: Request<pb::RankingRequest>,
    ) -> Result<Response<pb::RankingReport>, Status> {
        self.check(&request)?;
        let query = RankingQuery::from_proto(request.get_ref())?;
        Ok(Response::new(report::ranking(&*self.read()?, &query)?))
    }

    async fn list_checkpoints(
        &self,
        request: Request<pb::ListSystemCheckpointsRequest>,
    ) -> Result<Response<api::audit_pb::ListCheckpointsReply>, Status> {
        self.check(&request)?;
        let pb::ListSystemCheckpointsRequest {
            system,
            from_sequence,
            limit,
        } = request.into_inner();
        let system = domain::SystemId::new(system)
            .map_err(|e| api::status::status_invalid_field("system", &e.to_string()))?;
        let limit = match usize::try_from(limit) {
            Ok(0) | Err(_) => CHECKPOINTS_PAGE,
            Ok(n) => n.min(CHECKPOINTS_PAGE),
        };
        let checkpoints = self
            .received
            .list(&system, from_sequence, limit)
            .map_err(|e| Status::internal(format!("reading kept checkpoints: {e}")))?
            .iter()
            .map(audit::SignedCheckpoint::to_proto)
            .collect();
        Ok(Response::new(api::audit_pb::ListCheckpointsReply {
            checkpoints,
        }))
    }
}

/// Checkpoints returned when a request asks for none in particular, and at most.
const CHECKPOINTS_PAGE: usize = 1_000;
