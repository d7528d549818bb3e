//! positiond: the collective financial position of one integrated care system.
//!
//! - [`incoming`]: events as they arrive (JetStream message or `ReadAll`), decoded.
//! - [`projection`]: the fold and its place in the log; redelivery and gaps.
//! - [`checkpoint`]: the projection and its sequence in positiond's own sled, as one value.
//! - [`consumer`]: catch up from ledgerd, follow JetStream, checkpoint, then acknowledge.

pub mod checkpoint;
pub mod config;
pub mod consumer;
pub mod incoming;
pub mod projection;
pub mod server;
pub mod service;
