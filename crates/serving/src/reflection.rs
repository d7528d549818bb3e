//! The gRPC reflection service every ICS Ledger server runs, advertising what that server
//! answers and nothing else: all three register the workspace's one descriptor set, which
//! also describes the other servers' services, so without a list `grpcurl list` on positiond
//! would offer `LedgerService` too.

use anyhow::Context as _;
use tonic_reflection::pb::v1::server_reflection_server::{
    ServerReflection, ServerReflectionServer,
};

/// The standard health service's name, as clients ask reflection and health for it.
pub const HEALTH_SERVICE: &str = "grpc.health.v1.Health";
/// The reflection service's own name.
pub const REFLECTION_SERVICE: &str = "grpc.reflection.v1.ServerReflection";

/// Reflection (v1) advertising `services` — described in `descriptor_set` — and the health
/// and reflection services, whose descriptors tonic ships.
pub fn reflection(
    descriptor_set: &'static [u8],
    services: &[&str],
) -> anyhow::Result<ServerReflectionServer<impl ServerReflection>> {
    let builder = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(descriptor_set)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .with_service_name(HEALTH_SERVICE)
        .with_service_name(REFLECTION_SERVICE);
    services
        .iter()
        .fold(builder, |builder, service| {
            builder.with_service_name(*service)
        })
        .build_v1()
        .context("building the reflection service")
}
