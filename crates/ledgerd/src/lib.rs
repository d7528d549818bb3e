//! ledgerd: the write side of one integrated care system's ledger.
//!
//! # Layout
//! - [`config`]: defaults ← TOML file ← `LEDGERD_*` environment ← flags.
//! - [`ledger`]: the command path — idempotency, expected version, `decide`/`apply` under a
//!   short lock (decided here only; the store checks the contract), group-committed append,
//!   acknowledgement after the flush.
//! - [`service`]: `LedgerService` over gRPC, and the one mapping of submission errors to statuses.
//! - [`relay`]: publishes the committed log to NATS JetStream in order, exactly once.
//! - [`audit`]: the Merkle tree over the log and the signed checkpoints; [`audit_service`]:
//!   `AuditService` (proofs, checkpoints) over gRPC.
//! - [`server`]: start-up (replay), serving, graceful shutdown.

pub mod audit;
pub mod audit_service;
pub mod config;
pub mod ledger;
pub mod relay;
pub mod server;
pub mod service;
