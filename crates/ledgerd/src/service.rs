//! `LedgerService` over gRPC: one unary RPC per command, a client-streaming bulk submit, and the
//! reads (`ReadStream`, `ReadAll`, `Head`).
//!
//! Every command takes the same path ([`LedgerApi::command`]): convert the request (malformed →
//! `INVALID_ARGUMENT` naming the field), submit it to the [`Ledger`], answer after the flush.
//! [`status_from_submit`] is the one place a failed submission becomes a gRPC status.

use std::pin::Pin;

use api::pb::ledger_service_server::LedgerService;
use api::{IntoCommand, pb};
use domain::{Family, StreamId};
use futures::stream::FuturesOrdered;
use futures::{Stream, StreamExt};
use store::AppendOutcome;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::ledger::{Ledger, SubmitError};
use crate::relay::recorded_to_proto;

/// The metadata key naming who posts a command when authentication is off. With it on, the
/// actor is the token's subject and this key is ignored.
pub const ACTOR_METADATA: &str = "x-ics-actor";

/// The actor recorded when a request names none.
pub const ANONYMOUS_ACTOR: &str = "anonymous";

/// Bulk commands awaiting their flush at once; more waits for the oldest to finish.
const BULK_IN_FLIGHT_MAX: usize = 8_192;

/// Events buffered per reader before the server waits for the client to catch up.
const READ_BUFFER_EVENTS: usize = 256;
/// Pages of `ReadStored` read ahead of the client.
const READ_BUFFER_PAGES: usize = 4;

/// Limits applied to requests, from configuration.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub bulk_commands_max: u64,
    pub read_page_events: usize,
    /// `ReadAll` calls with `follow` open at once, in all (`follow_streams_max`)…
    pub follow_streams_max: usize,
    /// …and for one principal (`follow_streams_per_principal_max`; with authentication off,
    /// one client address).
    pub follow_streams_per_principal_max: usize,
}

#[derive(Clone)]
pub struct LedgerApi {
    ledger: Ledger,
    limits: Limits,
    /// The follow streams open: each holds a reader and its buffered events for as long as
    /// its client keeps the call open, read or not.
    follows: serving::slots::Slots,
    /// Checks bearer tokens; `None`: authentication is off (the actor comes from
    /// [`ACTOR_METADATA`]).
    verifier: Option<auth::Verifier>,
}

/// Who is asking: the actor recorded on what it posts, and the authenticated principal.
struct Caller {
    actor: String,
    principal: Option<auth::Principal>,
}

impl LedgerApi {
    pub fn new(ledger: Ledger, limits: Limits) -> Self {
        let follows = serving::slots::Slots::new(
            "follow streams",
            serving::slots::Cap {
                max: limits.follow_streams_max,
                key: "follow_streams_max",
            },
            serving::slots::Cap {
                max: limits.follow_streams_per_principal_max,
                key: "follow_streams_per_principal_max",
            },
        );
        LedgerApi {
            ledger,
            limits,
            follows,
            verifier: None,
        }
    }

    /// Requires a valid bearer token on every RPC and applies the roles' rules.
    pub fn with_auth(self, verifier: auth::Verifier) -> Self {
        LedgerApi {
            verifier: Some(verifier),
            ..self
        }
    }

    /// The caller, from its token (`UNAUTHENTICATED` if missing or invalid) or, with
    /// authentication off, from [`ACTOR_METADATA`].
    fn caller<R>(&self, request: &Request<R>) -> Result<Caller, Status> {
        let Some(verifier) = &self.verifier else {
            return Ok(Caller {
                actor: actor(request),
                principal: None,
            });
        };
        let principal = authenticate(verifier, request)?;
        Ok(Caller {
            actor: principal.subject.clone(),
            principal: Some(principal),
        })
    }

    /// Checks the caller may make `read`; returns who it is.
    fn may_read<R>(&self, request: &Request<R>, read: auth::Read) -> Result<Caller, Status> {
        let caller = self.caller(request)?;
        if let Some(principal) = &caller.principal {
            auth::may_read(principal, read).map_err(|d| auth::grpc::denied(&d))?;
        }
        Ok(caller)
    }

    async fn command<R: IntoCommand>(
        &self,
        request: Request<R>,
    ) -> Result<Response<pb::CommandReply>, Status> {
        let caller = self.caller(&request)?;
        let (meta, command) = request
            .into_inner()
            .into_command()
            .map_err(|e| api::status_from_domain(&e))?;
        let outcome = self
            .ledger
            .submit_as(meta, &caller.actor, caller.principal.as_ref(), command)
            .await
            .map_err(|e| status_from_submit(&e))?;
        Ok(Response::new(reply(&outcome)))
    }
}

/// The principal a request's bearer token names, checked at the current time.
#[allow(clippy::result_large_err)] // tonic::Status is what every handler returns
pub fn authenticate<R>(
    verifier: &auth::Verifier,
    request: &Request<R>,
) -> Result<auth::Principal, Status> {
    auth::grpc::authenticate(verifier, request, jiff::Timestamp::now().as_second())
}

/// Whose follow stream `request` opens: the principal's subject, or with authentication off,
/// the client's address (all of a client's connections alike).
fn follower<R>(caller: &Caller, request: &Request<R>) -> String {
    match (&caller.principal, request.remote_addr()) {
        (Some(principal), _) => principal.subject.clone(),
        (None, Some(address)) => address.ip().to_string(),
        (None, None) => caller.actor.clone(),
    }
}

fn actor<R>(request: &Request<R>) -> String {
    request
        .metadata()
        .get(ACTOR_METADATA)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128)
        .unwrap_or(ANONYMOUS_ACTOR)
        .to_string()
}

fn reply(outcome: &AppendOutcome) -> pb::CommandReply {
    pb::CommandReply {
        stream: outcome.stream.clone(),
        first_version: outcome.first_version,
        last_version: outcome.last_version,
        first_sequence: outcome.first_sequence,
        last_sequence: outcome.last_sequence,
        hash: outcome.hash.to_vec(),
        recorded_at_us: outcome.recorded_at_us,
        duplicate: outcome.duplicate,
    }
}

/// The one mapping from a failed submission to a gRPC status.
pub fn status_from_submit(error: &SubmitError) -> Status {
    match error {
        SubmitError::Domain(error) => api::status_from_domain(error),
        SubmitError::WrongExpectedVersion {
            stream,
            expected,
            actual,
        } => api::status_version_conflict(stream, *expected, *actual),
        SubmitError::RequestIdReused(id) => Status::already_exists(format!(
            "meta.request_id: {id} was already used for a different command; use a new request id"
        )),
        SubmitError::Poisoned | SubmitError::Store(_) => Status::unavailable(error.to_string()),
        SubmitError::Stuck(stuck) => Status::failed_precondition(stuck.to_string()),
        SubmitError::Denied(denied) => auth::grpc::denied(denied),
    }
}

type EventStream = Pin<Box<dyn Stream<Item = Result<pb::RecordedEvent, Status>> + Send + 'static>>;
type StoredStream = Pin<Box<dyn Stream<Item = Result<pb::StoredPage, Status>> + Send + 'static>>;

/// A `StoredPage` holds about this many bytes of events at most (and one event at least),
/// well under the 4 MiB message limit clients have by default.
const STORED_PAGE_BYTES: usize = 1024 * 1024;

/// `#[tonic::async_trait]` must see every method written out, so the trait impl is generated
/// whole: the command RPCs are one line each, the others delegate to [`LedgerApi`]'s methods.
macro_rules! ledger_service {
    ($($method:ident($request:ident);)*) => {
        #[tonic::async_trait]
        impl LedgerService for LedgerApi {
            $(
                async fn $method(&self, request: Request<pb::$request>) -> Result<Response<pb::CommandReply>, Status> {
                    self.command(request).await
                }
            )*

            async fn submit_bulk(&self, request: Request<Streaming<pb::Command>>) -> Result<Response<pb::BulkReply>, Status> {
                self.submit_bulk_impl(request).await
            }

            type ReadStreamStream = EventStream;

            async fn read_stream(&self, request: Request<pb::ReadStreamRequest>) -> Result<Response<EventStream>, Status> {
                self.read_stream_impl(request).await
            }

            type ReadAllStream = EventStream;

            async fn read_all(&self, request: Request<pb::ReadAllRequest>) -> Result<Response<EventStream>, Status> {
                self.read_all_impl(request).await
            }

            type ReadStoredStream = StoredStream;

            async fn read_stored(&self, request: Request<pb::ReadStoredRequest>) -> Result<Response<StoredStream>, Status> {
                self.read_stored_impl(request).await
            }

            async fn head(&self, request: Request<pb::HeadRequest>) -> Result<Response<pb::HeadReply>, Status> {
                self.may_read(&request, auth::Read::Status)?;
                self.head_impl()
            }
        }
    };
}

ledger_service! {
    establish_system(EstablishSystemRequest);
    admit_member(AdmitMemberRequest);
    agree_plan(AgreePlanRequest);
    submit_return(SubmitReturnRequest);
    report_metric(ReportMetricRequest);
    close_period(ClosePeriodRequest);
    file_return(FileReturnRequest);
    establish_budget(EstablishBudgetRequest);
    pledge_contribution(PledgeContributionRequest);
    pay_contribution(PayContributionRequest);
    record_spend(RecordSpendRequest);
    vary_budget(VaryBudgetRequest);
    settle_risk_share(SettleRiskShareRequest);
    close_budget(CloseBudgetRequest);
    allocate_fund(AllocateFundRequest);
    assess_tranche(AssessTrancheRequest);
    pay_tranche(PayTrancheRequest);
    claw_back(ClawBackRequest);
    agree_contract(AgreeContractRequest);
    vary_contract(VaryContractRequest);
    record_activity(RecordActivityRequest);
    raise_invoice(RaiseInvoiceRequest);
    record_payment(RecordPaymentRequest);
    raise_dispute(RaiseDisputeRequest);
    resolve_dispute(ResolveDisputeRequest);
    reconcile_cquin(ReconcileCquinRequest);
    record_adjustment(RecordAdjustmentRequest);
    terminate_contract(TerminateContractRequest);
}

impl LedgerApi {
    /// Commands are decided in the order they arrive and each is durable once acknowledged;
    /// the reply comes when all are flushed. The first refused command ends the call with its
    /// status (message prefixed `command N:`, counting from 0); commands before it stay
    /// recorded, and resending the whole batch with the same request ids is safe.
    async fn submit_bulk_impl(
        &self,
        request: Request<Streaming<pb::Command>>,
    ) -> Result<Response<pb::BulkReply>, Status> {
        let caller = self.caller(&request)?;
        let mut commands = request.into_inner();
        let mut pending = FuturesOrdered::new();
        let mut summary = BulkSummary::default();
        let mut index: u64 = 0;
        let mut refusal = None;
        while let Some(message) = commands.next().await {
            if index >= self.limits.bulk_commands_max {
                refusal = Some(Status::resource_exhausted(format!(
                    "a bulk submission holds at most {} commands; split the load",
                    self.limits.bulk_commands_max
                )));
                break;
            }
            let submitted = match message {
                Ok(command) => match api::command_from_proto(command) {
                    Ok((meta, command)) => self
                        .ledger
                        .enqueue_as(meta, &caller.actor, caller.principal.as_ref(), command)
                        .await
                        .map_err(|e| match e {
                            SubmitError::Domain(error) => api::status_from_domain(
                                &api::with_field_prefix(error, &format!("commands[{index}]")),
                            ),
                            other => status_from_submit(&other),
                        }),
                    Err(error) => Err(api::status_from_domain(&api::with_field_prefix(
                        error,
                        &format!("commands[{index}]"),
                    ))),
                },
                Err(status) => Err(refused_message(status, index)),
            };
            match submitted {
                Ok(future) => pending.push_back(future),
                Err(status) => {
                    refusal = Some(prefix_status(&status, index));
                    break;
                }
            }
            index += 1;
            while pending.len() >= BULK_IN_FLIGHT_MAX {
                if let Some(result) = pending.next().await {
                    summary.add(result)?;
                }
            }
        }
        while let Some(result) = pending.next().await {
            summary.add(result)?;
        }
        if let Some(status) = refusal {
            return Err(status);
        }
        let head = self.ledger.store().head();
        Ok(Response::new(pb::BulkReply {
            accepted: summary.accepted,
            duplicates: summary.duplicates,
            first_sequence: summary.first_sequence.unwrap_or(0),
            last_sequence: summary.last_sequence,
            head_hash: head.hash.to_vec(),
        }))
    }

    async fn read_stream_impl(
        &self,
        request: Request<pb::ReadStreamRequest>,
    ) -> Result<Response<EventStream>, Status> {
        self.may_read(&request, auth::Read::Log)?;
        let request = request.into_inner();
        let stream = StreamId::parse(&request.stream).map_err(|e| api::status_from_domain(&e))?;
        let store = self.ledger.store().clone();
        if store
            .stream_version(stream.as_str())
            .map_err(|e| Status::unavailable(e.to_string()))?
            == 0
        {
            return Err(api::status_not_found(
                "stream",
                stream.as_str(),
                format!("stream '{stream}' has no events"),
            ));
        }
        let page = self.limits.read_page_events;
        let limit = if request.limit == 0 {
            u64::MAX
        } else {
            request.limit
        };
        let (tx, rx) = mpsc::channel(READ_BUFFER_EVENTS);
        tokio::spawn(async move {
            let mut next = request.from_version.max(1);
            let mut sent = 0u64;
            while sent < limit {
                let want = usize::try_from((limit - sent).min(page as u64)).unwrap_or(page);
                let (reader, stream) = (store.clone(), stream.clone());
                let read = off_runtime(move || {
                    let events = reader.read_stream(stream.as_str(), next, want)?;
                    let last = events.last().map(|event| event.version);
                    Ok((
                        last,
                        events.iter().map(recorded_to_proto).collect::<Vec<_>>(),
                    ))
                });
                let (last, events) = match read.await {
                    Ok(page) => page,
                    Err(status) => {
                        let _ = tx.send(Err(status)).await;
                        return;
                    }
                };
                let Some(last) = last else { return };
                next = last + 1;
                for event in events {
                    if tx.send(Ok(event)).await.is_err() {
                        return;
                    }
                    sent += 1;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    /// Reads the log from `from_sequence`; with `follow`, keeps the call open and sends each
    /// event as it becomes durable.
    async fn read_all_impl(
        &self,
        request: Request<pb::ReadAllRequest>,
    ) -> Result<Response<EventStream>, Status> {
        let caller = self.may_read(&request, auth::Read::Log)?;
        let slot = match request.get_ref().follow {
            true => Some(self.follows.take(&follower(&caller, &request))?),
            false => None,
        };
        let request = request.into_inner();
        let store = self.ledger.store().clone();
        let page = self.limits.read_page_events;
        let limit = if request.limit == 0 {
            u64::MAX
        } else {
            request.limit
        };
        let (tx, rx) = mpsc::channel(READ_BUFFER_EVENTS);
        tokio::spawn(async move {
            // Held until the reader ends: the client went away, or the log was read to `limit`.
            let _slot = slot;
            let mut head = store.subscribe();
            let mut next = request.from_sequence.max(1);
            let mut sent = 0u64;
            while sent < limit {
                let want = usize::try_from((limit - sent).min(page as u64)).unwrap_or(page);
                let reader = store.clone();
                let read = off_runtime(move || {
                    let events = reader.read_all(next, want)?;
                    Ok(events.iter().map(recorded_to_proto).collect::<Vec<_>>())
                });
                let events = match read.await {
                    Ok(events) => events,
                    Err(status) => {
                        let _ = tx.send(Err(status)).await;
                        return;
                    }
                };
                if events.is_empty() {
                    if !request.follow {
                        return;
                    }
                    tokio::select! {
                        changed = head.changed() => if changed.is_err() { return },
                        () = tx.closed() => return,
                    }
                    continue;
                }
                for event in events {
                    next = event.sequence + 1;
                    if tx.send(Ok(event)).await.is_err() {
                        return;
                    }
                    sent += 1;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    /// The log as stored, in pages, to the head as it is now (or `limit` events).
    async fn read_stored_impl(
        &self,
        request: Request<pb::ReadStoredRequest>,
    ) -> Result<Response<StoredStream>, Status> {
        self.may_read(&request, auth::Read::Log)?;
        let request = request.into_inner();
        let store = self.ledger.store().clone();
        let from = request.from_sequence.max(1);
        let head = store.head().sequence;
        let to = match request.limit {
            0 => head,
            limit => head.min(from.saturating_add(limit - 1)),
        };
        let page = self.limits.read_page_events;
        let (tx, rx) = mpsc::channel(READ_BUFFER_PAGES);
        tokio::spawn(async move {
            let mut next = from;
            while next <= to {
                let want = usize::try_from(to - next + 1).unwrap_or(page).min(page);
                let reader = store.clone();
                let read = off_runtime(move || reader.read_values(next, want, STORED_PAGE_BYTES));
                let values = match read.await {
                    Ok(values) if !values.is_empty() => values,
                    Ok(_) => return,
                    Err(status) => {
                        let _ = tx.send(Err(status)).await;
                        return;
                    }
                };
                let first_sequence = next;
                next += values.len() as u64;
                let page = pb::StoredPage {
                    first_sequence,
                    events: values.into_iter().map(bytes::Bytes::from_owner).collect(),
                };
                if tx.send(Ok(page)).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    fn head_impl(&self) -> Result<Response<pb::HeadReply>, Status> {
        let head = self.ledger.store().head();
        let counts = self.ledger.counts();
        let stuck = self.ledger.stuck();
        Ok(Response::new(pb::HeadReply {
            sequence: head.sequence,
            hash: if head.sequence == 0 {
                Vec::new()
            } else {
                head.hash.to_vec()
            },
            system_events: counts.get(Family::System),
            budget_events: counts.get(Family::Budget),
            funding_events: counts.get(Family::Funding),
            contract_events: counts.get(Family::Contract),
            stuck_sequence: stuck.map_or(0, |s| s.sequence),
            stuck_reason: stuck.map(|s| s.reason.clone()).unwrap_or_default(),
        }))
    }
}

/// Runs a read of the store on tokio's blocking pool and answers its result as a status. sled
/// reads block — on the disk, when the pages are not in sled's cache — and the read calls
/// stream whole logs page after page: done on a runtime worker they would hold up every other
/// call scheduled on it, the acknowledgements of appends among them.
async fn off_runtime<T, F>(read: F) -> Result<T, Status>
where
    F: FnOnce() -> Result<T, store::StoreError> + Send + 'static,
    T: Send + 'static,
{
    match tokio::task::spawn_blocking(read).await {
        Ok(result) => result.map_err(|error| Status::unavailable(error.to_string())),
        Err(failed) => Err(Status::internal(format!(
            "reading the store failed: {failed}"
        ))),
    }
}

/// What a bulk submission recorded.
#[derive(Default)]
struct BulkSummary {
    accepted: u64,
    duplicates: u64,
    first_sequence: Option<u64>,
    last_sequence: u64,
}

impl BulkSummary {
    fn add(
        &mut self,
        result: Result<AppendOutcome, std::sync::Arc<SubmitError>>,
    ) -> Result<(), Status> {
        let outcome = result.map_err(|e| status_from_submit(&e))?;
        if outcome.duplicate {
            self.duplicates += 1;
        } else {
            self.accepted += 1;
            self.first_sequence.get_or_insert(outcome.first_sequence);
        }
        self.last_sequence = self.last_sequence.max(outcome.last_sequence);
        Ok(())
    }
}

/// tonic's refusal of the bulk call's message `index` (over the size limit, or not protobuf)
/// as the contract names it, the field path starting `commands[index]` as for a command the
/// domain refuses.
fn refused_message(status: Status, index: u64) -> Status {
    match serving::refusals::DecodeRefusal::of(&status) {
        // prost's path starts at `Command`'s oneof field (`report_metric.member`); a command
        // refused otherwise is named by its request's own fields (`commands[3].member`).
        Some(refusal) => {
            let mut field = format!("commands[{index}]");
            for name in refusal.path.iter().skip(1) {
                field.push('.');
                field.push_str(name);
            }
            refusal.status(&field)
        }
        None => serving::refusals::renamed(status),
    }
}

/// The same status, its message prefixed with the failing command's index in the bulk call.
/// The details (`grpc-status-details-bin`) are a `google.rpc.Status` that repeats the code
/// and message, and clients check that they match (Python's `rpc_status.from_call` raises
/// otherwise): they are rewritten with the new message, every detail kept.
fn prefix_status(status: &Status, index: u64) -> Status {
    use prost::Message as _;
    let message = format!("command {index}: {}", status.message());
    if status.details().is_empty() {
        return Status::new(status.code(), message);
    }
    let details = match tonic_types::pb::Status::decode(status.details()) {
        Ok(mut rpc) => {
            rpc.code = status.code() as i32;
            rpc.message.clone_from(&message);
            rpc.encode_to_vec()
        }
        Err(error) => {
            tracing::error!(%error, "a refusal's own details do not decode; sent without them");
            return Status::new(status.code(), message);
        }
    };
    Status::with_details(status.code(), message, details.into())
}
