//! positiond: the collective financial position of one integrated care system, kept up to
//! date by the [`follow`] mechanism and served over gRPC.
//!
//! - [`config`]: file, environment and flags.
//! - [`position`]: the domain's position projection, folded by `follow`.
//! - [`service`]: `PositionService` over the shared projection.
//! - [`server`]: start-up and shutdown.

pub mod config;
pub mod position;
pub mod server;
pub mod service;
