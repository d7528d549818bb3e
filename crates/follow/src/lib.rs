//! follow: how a read-side service keeps a projection of the ledger up to date.
//!
//! positiond (one ICS) and oversightd (every ICS) both fold the ledger's events into a
//! projection kept in their own sled; this crate is the mechanism they share:
//!
//! - [`incoming`]: events as they arrive (JetStream message or `ReadStored`), decoded and
//!   checked.
//! - [`projection`]: the fold and its place in the log; redelivery and gaps.
//! - [`checkpoint`]: the projection and its sequence in the service's own sled, as one value.
//! - [`parked`]: messages refused from JetStream (NATS is untrusted), kept with the reason.
//! - `pending`: events from JetStream held until ledgerd vouches for them.
//! - [`consumer`]: catch up from ledgerd, follow JetStream (acknowledging what is folded),
//!   checkpoint on a schedule that bounds its cost.
//! - [`status`]: what the service says about itself — its consumer lost and being recreated,
//!   a system stuck on an event that does not fold — for gRPC status and health. A reader
//!   never wedges silently and never crash-loops on what the log holds.
//! - [`fleet`]: the same for many systems on one consumer (`ics.*.>`), each with its own
//!   sequence, chain and ledgerd, checkpointed together.

pub mod checkpoint;
pub mod consumer;
pub mod fleet;
pub mod incoming;
pub mod ledgerd;
pub mod parked;
mod pending;
pub mod projection;
mod pull;
pub mod status;
