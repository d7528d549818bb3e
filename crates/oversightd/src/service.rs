//! `OversightService` over the shared fleet.

use api::oversight_pb as pb;
use api::oversight_pb::oversight_service_server::OversightService;
use follow::fleet::{Fleet, SharedFleet};
use tonic::{Request, Response, Status};

use crate::report::{self, PerformanceQuery, RankingQuery};
use crate::view::SystemView;

/// The gRPC service: reads the fleet the consumer keeps up to date.
pub struct OversightApi {
    shared: SharedFleet<SystemView>,
}

impl OversightApi {
    pub fn new(shared: SharedFleet<SystemView>) -> Self {
        OversightApi { shared }
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
        _request: Request<pb::ListSystemsRequest>,
    ) -> Result<Response<pb::ListSystemsReply>, Status> {
        Ok(Response::new(report::list_systems(&*self.read()?)))
    }

    async fn get_performance(
        &self,
        request: Request<pb::PerformanceRequest>,
    ) -> Result<Response<pb::PerformanceReport>, Status> {
        let query = PerformanceQuery::from_proto(request.get_ref())?;
        Ok(Response::new(report::performance(&*self.read()?, &query)?))
    }

    async fn get_ranking(
        &self,
        request: Request<pb::RankingRequest>,
    ) -> Result<Response<pb::RankingReport>, Status> {
        let query = RankingQuery::from_proto(request.get_ref())?;
        Ok(Response::new(report::ranking(&*self.read()?, &query)?))
    }
}
