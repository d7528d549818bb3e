# The two commands: `make demo` runs the whole stack on this machine and prints the demo ICS's
# ledger; `make test` runs every test. Both install what they need (nats-server; strace for
# the tests) themselves.
SHELL := /bin/bash
.DEFAULT_GOAL := demo

.PHONY: demo up down test build release nats-server lint bench soak fuzz

demo: release
	./deploy/local/stack.sh demo

up: release
	./deploy/local/stack.sh up

down:
	./deploy/local/stack.sh down

release:
	cargo build --release --bins

build:
	cargo build --workspace --bins

nats-server:
	@./deploy/local/install-nats-server.sh

# End-to-end tests spawn the real binaries, so build them first.
test: build
	./deploy/local/install-test-tools.sh
	NATS_SERVER_BIN="$$(./deploy/local/install-nats-server.sh)" cargo test --workspace

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

bench:
	cargo build --release --bin ledgerd
	NATS_SERVER_BIN="$$(./deploy/local/install-nats-server.sh)" cargo bench -p bench

# The fault suite's trials (tests/tests/faults.rs) many times over: ledgerd SIGKILLed and
# nats-server wiped under load, bytes of a stopped store changed. 3 minutes shared by the
# kinds by default; flags through SOAK_ARGS, e.g. `make soak SOAK_ARGS="--minutes 15"` or
# `SOAK_ARGS="--kinds kill9 --trials 50 --seed 7"`. Exits 1 if anything was lost, doubled or
# truncated; figures in crates/bench/README.md ("Soak").
soak: build
	NATS_SERVER_BIN="$$(./deploy/local/install-nats-server.sh)" cargo run --quiet -p e2e --bin soak -- $(SOAK_ARGS)

# The fuzzer's long run against the release ledgerd (ICS_FUZZ_REQUESTS, default 100,000;
# ICS_FUZZ_SEED repeats a run). `make test` runs it bounded (crates/bench/tests/fuzz.rs).
fuzz:
	cargo build --release --bin ledgerd
	cargo bench -p bench --bench fuzz
