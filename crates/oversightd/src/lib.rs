//! oversightd: the regulator's service. One instance follows every ICS — one durable
//! JetStream consumer on `ics.*.>` (see [`follow::fleet`]) — and folds each system's events
//! into its own [`view::SystemView`]: the domain's position projection (the same arithmetic
//! positiond and the audit replay use) and the operational metrics the system reports. It
//! serves `ics.oversight.v1.OversightService` (`proto/ics/oversight/v1/oversight.proto`):
//!
//! - `ListSystems`: every system followed, with how far its log is folded;
//! - `GetPerformance(system, year, quarter, baseline_year)`: the system against its control
//!   total year to date at the quarter's last month (actual before the sustainability fund,
//!   forecast outturn, fund earned and forfeited and which condition of which tranche failed),
//!   and its emergency admissions and emergency bed days as growth against the same quarter of
//!   the baseline year beside the same growth for every other system together ("the rest of
//!   the country"), and its A&E four-hour performance for the quarter;
//! - `GetRanking(year, quarter, baseline_year, measure)`: every system ranked on one measure.
//!
//! Modules: [`config`] (file, environment, flags), [`view`] (one system's fold), [`report`]
//! (requests checked, reports built), [`service`] (gRPC), [`server`] (start-up and shutdown).
//!
//! # OVERSIGHTD configuration
//!
//! Layers, each overriding the one before: built-in defaults, the TOML file named by
//! `--config` (or `OVERSIGHTD_CONFIG`), `OVERSIGHTD_*` environment variables, flags.
//!
//! | key (file / `OVERSIGHTD_<KEY>`) | flag | default | what |
//! |---|---|---|---|
//! | `listen` | `--listen` | `127.0.0.1:50071` | gRPC address (OversightService, health, reflection) |
//! | `data_dir` | `--data-dir` | `.local/oversightd` | oversightd's own sled: one checkpoint per system |
//! | `nats_url` | `--nats-url` | `nats://127.0.0.1:4222` | NATS (a password user may still put `user:password@` in it) |
//! | `nats_nkey_seed_file` | | none | the file holding oversightd's NATS user nkey seed (`icsctl dev nkeys`): the `oversightd` user of `deploy/nats/permissions.conf` may create, pull from and acknowledge its own consumers (`oversightd`, `-2`, `-3`) on the `ICS` stream, and nothing else |
//! | `nats_inbox_prefix` | | `_INBOX_oversightd` | the subjects its replies and pulled messages come back on: the only ones its user may subscribe to |
//! | `ledgerds` | `--ledgerd <system>=<url>` (repeat) | none | each system's ledgerd gRPC URL, for catching up and filling gaps. In the file a table (`[ledgerds]` then `kav = "http://10.0.0.1:50051"`); in the environment an inline table (`OVERSIGHTD_LEDGERDS='{kav="http://10.0.0.1:50051"}'`), joined with the file's; flags replace both |
//! | `consumer` | `--consumer` | `oversightd` | durable JetStream consumer name; one per replica |
//! | `stream_name` | | `ICS` | the stream the relays publish to |
//! | `filter_subject` | | `ics.*.>` | the subjects followed (narrow it to follow fewer systems) |
//! | `fetch_max` | | `512` | messages per pull |
//! | `checkpoint_events`, `checkpoint_interval_ms` | | `10000`, `200` | checkpoint (then acknowledge) after this many new events or this long after the first unsaved one |
//! | `retry_delay_ms` | | `1000` | how long before JetStream offers again a message whose gap could not be filled |
//!
//! **Systems without a ledgerd.** A system need not be in `ledgerds`: its events are folded
//! from JetStream alone. But a gap in its messages (JetStream lost one, or its first message
//! in the stream is not sequence 1) cannot be filled: oversightd logs an error naming the
//! system and the missing sequences, does not acknowledge that message or any later one of
//! that system (they are offered again every `retry_delay_ms`), and reports the system as it
//! stood before the gap (its `Folded` says where). Other systems are not held up — until the
//! stuck system's unacknowledged messages reach the consumer's `max_ack_pending` (JetStream's
//! default, 1,000), which stops delivery to the whole consumer. Configure a ledgerd for every
//! system that matters. A ledgerd that is configured but unreachable is treated the same way
//! until it can be reached.
//!
//! **Restart.** Every system's projection and sequence are checkpointed together (one sled
//! batch, flushed) before the messages folded into them are acknowledged, so a restarted
//! oversightd answers from its checkpoint at once, catches up from each ledgerd, and ignores
//! what JetStream redelivers.

pub mod config;
pub mod report;
pub mod server;
pub mod service;
pub mod view;
