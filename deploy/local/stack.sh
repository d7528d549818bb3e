#!/usr/bin/env bash
# The single-machine stack: a local nats-server with JetStream, and ledgerd on embedded sled.
#
#   stack.sh up      start it in the background (data under .local/stack/, kept across runs)
#   stack.sh down    stop it
#   stack.sh demo    start a fresh stack under .local/demo/, load the Kingsmere & Alder Valley
#                    scenario, print the ledger head, the event counts per family and the
#                    JetStream stream's message count and last hash, check they agree, stop.
#
# Ports (loopback only): NATS 14222 (monitoring 18222), ledgerd gRPC 50051 over TLS.
# Certificates: a local CA made by `icsctl dev certs` under .local/certs/ (once, then reused);
# point a client at it with `icsctl --ca .local/certs/ca.pem …` (or ICS_CA=…).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
nats_url="nats://127.0.0.1:14222"
# Each service connects as its own user (deploy/nats/permissions.conf; local passwords).
ledgerd_nats="nats://ledgerd:local-ledgerd@127.0.0.1:14222"
reader_nats="nats://reader:local-reader@127.0.0.1:14222"
grpc_addr="127.0.0.1:50051"
bin="$root/target/release"
scenario="$root/deploy/demo/kingsmere-2018-19.ics"

certs="$root/.local/certs"
ctl=("$bin/icsctl" --server "https://$grpc_addr" --ca "$certs/ca.pem")

start() { # $1 = state dir
  local dir="$1"
  mkdir -p "$dir/nats" "$dir/ledgerd" "$dir/logs"
  "$bin/icsctl" dev certs --dir "$certs" >/dev/null
  local nats_bin
  nats_bin="$("$root/deploy/local/install-nats-server.sh")"
  "$nats_bin" -c "$root/deploy/nats/single.conf" -sd "$dir/nats" >"$dir/logs/nats.log" 2>&1 &
  echo $! >"$dir/nats.pid"
  wait_for "nats-server" "bash -c 'exec 3<>/dev/tcp/127.0.0.1/14222'" "$dir/logs/nats.log"
  LEDGERD_TLS_CERT="$certs/server.pem" LEDGERD_TLS_KEY="$certs/server.key" \
    "$bin/ledgerd" --listen "$grpc_addr" --data-dir "$dir/ledgerd" --system kav --nats-url "$ledgerd_nats" \
    >"$dir/logs/ledgerd.log" 2>&1 &
  echo $! >"$dir/ledgerd.pid"
  wait_for "ledgerd" "${ctl[*]} head" "$dir/logs/ledgerd.log"
}

wait_for() { # $1 = name, $2 = probe command, $3 = log
  for _ in $(seq 1 100); do
    if eval "$2" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  echo "$1 did not start; its log says:" >&2
  tail -n 20 "$3" >&2
  exit 1
}

stop() { # $1 = state dir
  local dir="$1"
  for name in ledgerd nats; do
    if [ -f "$dir/$name.pid" ]; then
      local pid
      pid="$(cat "$dir/$name.pid")"
      if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid"
        for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
      fi
      rm -f "$dir/$name.pid"
    fi
  done
}

case "${1:-}" in
  up)
    dir="$root/.local/stack"
    if [ -f "$dir/ledgerd.pid" ] && kill -0 "$(cat "$dir/ledgerd.pid")" 2>/dev/null; then
      echo "the stack is already up"; exit 0
    fi
    start "$dir"
    echo "up: ledgerd on https://$grpc_addr (CA .local/certs/ca.pem), NATS on $nats_url (data in .local/stack; 'make down' stops it)"
    ;;
  down)
    stop "$root/.local/stack"
    echo "down"
    ;;
  demo)
    dir="$root/.local/demo"
    stop "$dir"
    rm -rf "$dir"
    trap 'stop "$dir"' EXIT
    start "$dir"
    echo "== loading $(basename "$scenario")"
    "${ctl[@]}" load "$scenario"
    echo "== ledger head"
    "${ctl[@]}" head
    echo "== JetStream"
    "${ctl[@]}" bus-status --nats-url "$reader_nats" --system kav --wait
    ;;
  *)
    echo "usage: $0 up|down|demo" >&2
    exit 2
    ;;
esac
