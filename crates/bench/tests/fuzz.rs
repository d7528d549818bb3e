//! The fuzzer against the real ledgerd binary, bounded for `make test`: a few thousand
//! requests from a fresh seed each run (printed, and named by any failure; `ICS_FUZZ_SEED`
//! repeats a run, `ICS_FUZZ_REQUESTS` changes its length). `cargo bench -p bench --bench
//! fuzz` is the long run.

/// Requests in the bounded run.
const REQUESTS: u64 = 3_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ledgerd_answers_fuzzed_requests_as_documented_and_keeps_its_chain() -> anyhow::Result<()> {
    let settings = bench::fuzz::Settings::from_env(REQUESTS)?;
    println!(
        "fuzz: seed {} ({} requests; ICS_FUZZ_SEED={} repeats it)",
        settings.seed, settings.requests, settings.seed
    );
    let run = bench::fuzz::run(&settings).await?;
    println!(
        "{} requests in {:.1} s, {} events recorded, head {}\n{}",
        run.requests,
        run.elapsed.as_secs_f64(),
        run.events_recorded,
        run.head,
        run.table()
    );
    // The run reached every kind of request, and ledgerd accepted some of them.
    assert_eq!(run.answers.values().sum::<u64>(), settings.requests);
    if settings.requests >= 1_000 {
        for kind in [
            "command, changed",
            "SubmitBulk",
            "read",
            "audit",
            "random bytes",
        ] {
            assert!(
                run.answers.keys().any(|(k, _)| *k == kind),
                "no {kind} was sent"
            );
        }
        assert!(run.events_recorded > 0, "nothing was accepted");
    }
    Ok(())
}

/// Found by the fuzzer: a value tens of KiB long, quoted back whole in the status message and
/// its details, made trailers no client accepts (h2's 16 KiB; grpcio's 8 KiB), so the client
/// saw a protocol error instead of INVALID_ARGUMENT. Now the status is cut to fit and still
/// names the field.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_value_is_refused_with_a_status_the_client_can_read() -> anyhow::Result<()> {
    use api::pb;
    let dir = tempfile::tempdir()?;
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], testkit::free_port()));
    let mut command = std::process::Command::new(testkit::workspace_binary("ledgerd")?);
    command
        .arg("--listen")
        .arg(addr.to_string())
        .arg("--data-dir")
        .arg(dir.path().join("ledgerd"))
        .arg("--system")
        .arg("kav");
    let mut ledgerd =
        testkit::ChildGuard::spawn_logged("ledgerd", &mut command, &dir.path().join("log"))?;
    ledgerd.wait_for_port(addr, std::time::Duration::from_secs(30))?;
    let mut client =
        pb::ledger_service_client::LedgerServiceClient::connect(format!("http://{addr}")).await?;
    let long = "A".repeat(20_000);
    let read = client
        .read_stream(pb::ReadStreamRequest {
            stream: long.clone(),
            from_version: 1,
            limit: 1,
        })
        .await
        .err();
    let invoice = client
        .raise_invoice(pb::RaiseInvoiceRequest {
            meta: Some(pb::CommandMeta {
                request_id: uuid::Uuid::new_v4().to_string(),
                expected_version: None,
                correlation_id: String::new(),
            }),
            contract: long.clone(),
            invoice: long,
            period: Some(pb::Period {
                year: 2019,
                month: 3,
            }),
            amount_pence: 1,
            corrects: None,
        })
        .await
        .err();
    for (status, field) in [(read, "stream"), (invoice, "contract")] {
        let status = status.ok_or_else(|| anyhow::anyhow!("{field}: accepted"))?;
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
        let details = tonic_types::StatusExt::get_error_details(&status);
        let violation = &details
            .bad_request()
            .ok_or_else(|| anyhow::anyhow!("no BadRequest: {status:?}"))?
            .field_violations[0];
        assert_eq!(violation.field, field);
        assert!(
            status.message().len() <= 1024,
            "{} bytes",
            status.message().len()
        );
    }
    Ok(())
}
