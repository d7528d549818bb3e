//! `AuditService` over gRPC: the tree head, inclusion and consistency proofs, and the signed
//! checkpoints. Reads for those whose role may read proofs (`auth::Read::Proofs`).

use api::audit_pb::{self, audit_service_server::AuditService};
use tonic::{Request, Response, Status};

use crate::audit::{AuditLog, ProofError};
use crate::ledger::Store;

/// Checkpoints returned when a request asks for none in particular, and at most.
const CHECKPOINTS_PAGE: usize = 1_000;

#[derive(Clone)]
pub struct AuditApi {
    store: Store,
    log: AuditLog,
    verifier: Option<auth::Verifier>,
}

impl AuditApi {
    pub fn new(store: Store, log: AuditLog, verifier: Option<auth::Verifier>) -> Self {
        AuditApi {
            store,
            log,
            verifier,
        }
    }

    #[allow(clippy::result_large_err)]
    fn may_read<R>(&self, request: &Request<R>) -> Result<(), Status> {
        auth::grpc::may_read(
            self.verifier.as_ref(),
            request,
            auth::Read::Proofs,
            jiff::Timestamp::now().as_second(),
        )
        .map(|_| ())
    }
}

fn status(error: ProofError) -> Status {
    match error {
        ProofError::OutOfRange { field, .. } => {
            api::status::status_invalid_field(field, &error.to_string())
        }
        ProofError::Store(e) => Status::internal(format!("event store: {e}")),
        ProofError::Tree(e) => Status::internal(format!("Merkle tree: {e}")),
    }
}

#[tonic::async_trait]
impl AuditService for AuditApi {
    async fn get_tree_head(
        &self,
        request: Request<audit_pb::TreeHeadRequest>,
    ) -> Result<Response<audit_pb::TreeHead>, Status> {
        self.may_read(&request)?;
        let head = self.log.head();
        Ok(Response::new(audit_pb::TreeHead {
            tree_size: head.size,
            root: head.root.to_vec(),
            chain_hash: head.chain_hash.to_vec(),
        }))
    }

    async fn get_inclusion_proof(
        &self,
        request: Request<audit_pb::InclusionProofRequest>,
    ) -> Result<Response<audit_pb::InclusionProof>, Status> {
        self.may_read(&request)?;
        let audit_pb::InclusionProofRequest {
            sequence,
            tree_size,
        } = request.into_inner();
        let proof = self.log.inclusion(sequence, tree_size).map_err(status)?;
        let chain_hash = self
            .store
            .read_hashes(sequence, 1)
            .map_err(|e| status(e.into()))?
            .first()
            .copied()
            .ok_or_else(|| {
                Status::internal(format!("event {sequence} is in the tree but not readable"))
            })?;
        Ok(Response::new(audit_pb::InclusionProof {
            sequence,
            tree_size: proof.size,
            chain_hash: chain_hash.to_vec(),
            path: proof.path.iter().map(|h| h.to_vec()).collect(),
            root: proof.root.to_vec(),
        }))
    }

    async fn get_consistency_proof(
        &self,
        request: Request<audit_pb::ConsistencyProofRequest>,
    ) -> Result<Response<audit_pb::ConsistencyProof>, Status> {
        self.may_read(&request)?;
        let audit_pb::ConsistencyProofRequest { old_size, new_size } = request.into_inner();
        let proof = self.log.consistency(old_size, new_size).map_err(status)?;
        Ok(Response::new(audit_pb::ConsistencyProof {
            old_size,
            new_size: proof.new_size,
            old_root: proof.old_root.to_vec(),
            new_root: proof.new_root.to_vec(),
            path: proof.path.iter().map(|h| h.to_vec()).collect(),
        }))
    }

    async fn list_checkpoints(
        &self,
        request: Request<audit_pb::ListCheckpointsRequest>,
    ) -> Result<Response<audit_pb::ListCheckpointsReply>, Status> {
        self.may_read(&request)?;
        let audit_pb::ListCheckpointsRequest {
            from_sequence,
            limit,
        } = request.into_inner();
        let limit = match usize::try_from(limit) {
            Ok(0) | Err(_) => CHECKPOINTS_PAGE,
            Ok(n) => n.min(CHECKPOINTS_PAGE),
        };
        let stored = self
            .store
            .checkpoints(from_sequence, limit)
            .map_err(|e| Status::internal(format!("event store: {e}")))?;
        // Stored as the protobuf itself: decoded, not rebuilt (signatures are the caller's
        // to verify).
        let checkpoints = stored
            .iter()
            .map(|(sequence, bytes)| {
                <audit_pb::Checkpoint as prost::Message>::decode(bytes.as_slice())
                    .map_err(|e| Status::data_loss(format!("stored checkpoint {sequence}: {e}")))
            })
            .collect::<Result<_, _>>()?;
        Ok(Response::new(audit_pb::ListCheckpointsReply {
            checkpoints,
        }))
    }
}
