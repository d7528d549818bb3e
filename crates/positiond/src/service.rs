//! `PositionService` over the shared projection.

use api::position_pb as pb;
use api::position_pb::position_service_server::PositionService;
use tonic::{Request, Response, Status};

use follow::consumer::Shared;
use follow::projection::Projection;

/// The gRPC service: reads the projection the consumer keeps up to date.
pub struct PositionApi<P> {
    system: String,
    shared: Shared<P>,
}

impl<P> PositionApi<P> {
    pub fn new(system: String, shared: Shared<P>) -> Self {
        PositionApi { system, shared }
    }
}

#[tonic::async_trait]
impl<P: Projection> PositionService for PositionApi<P> {
    async fn get_status(
        &self,
        _request: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusReply>, Status> {
        let folded = self
            .shared
            .read()
            .map_err(|_| Status::internal("the projection's lock is poisoned"))?;
        Ok(Response::new(pb::StatusReply {
            system: self.system.clone(),
            folded: Some(pb::Basis {
                sequence: folded.sequence,
                hash: if folded.sequence == 0 {
                    Vec::new()
                } else {
                    folded.hash.to_vec()
                },
                recorded_at_us: folded.recorded_at_us,
            }),
        }))
    }
}
