#!/usr/bin/env bash
# The single-machine stack: a local nats-server with JetStream, ledgerd on embedded sled, and
# positiond folding the ledger's events into the collective position.
#
#   stack.sh up      start it in the background (data under .local/stack/, kept across runs)
#   stack.sh down    stop it
#   stack.sh demo    start a fresh stack under .local/demo/, load the Kingsmere & Alder Valley
#                    scenario, print the ledger head, the event counts per family and the
#                    JetStream stream's message count and last hash, check they agree, wait
#                    until positiond has folded the head, print the M12 position and the
#                    sustainability fund's quarterly tests, the regulator's summary, the audit
#                    (verify, a proof, a filed return checked and an altered copy caught), stop.
#
# Ports (loopback only): NATS 14222 (monitoring 18222), ledgerd gRPC 50051 over TLS,
# positiond gRPC 50061 over TLS.
# Certificates: a local CA made by `icsctl dev certs` under .local/certs/ (once, then reused);
# point a client at it with `icsctl --ca .local/certs/ca.pem …` (or ICS_CA=…).
# NATS: each service connects as its own nkey user (deploy/nats/permissions.conf), made by
# `icsctl dev nkeys` under .local/nkeys/ (once, then reused): the service is given its seed
# (<user>.nk), nats-server only the public keys (<user>.pub, as ICS_NATS_<USER>_NKEY). Read
# the bus as the reader: `icsctl bus-status --nats-nkey-seed-file .local/nkeys/reader.nk`.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
nats_url="nats://127.0.0.1:14222"
grpc_addr="127.0.0.1:50051"
position_addr="127.0.0.1:50061"
oversight_addr="127.0.0.1:50071"
bin="$root/target/release"
scenario="$root/deploy/demo/kingsmere-2018-19.ics"

certs="$root/.local/certs"
keys="$root/.local/keys"
nkeys="$root/.local/nkeys"
ctl=("$bin/icsctl" --server "https://$grpc_addr" --position-server "https://$position_addr"
  --oversight-server "https://$oversight_addr" --ca "$certs/ca.pem")

# The ICS's signing key and the regulator's (made once), a system-finance token for this
# script's own calls, a regulator's token for oversightd, and the tokens positiond and
# oversightd show ledgerd (auditors: they read the log). `icsctl token issue` makes others.
tokens() { # $1 = state dir
  local issue=("$bin/icsctl" token issue --key "$keys/ics-signing.pem" --system kav)
  "$bin/icsctl" keys generate --dir "$keys" >/dev/null
  "$bin/icsctl" keys generate --dir "$keys/regulator" >/dev/null
  "$bin/icsctl" keys generate --dir "$keys" --name ledger-checkpoint >/dev/null
  ICS_TOKEN="$("${issue[@]}" --role system-finance --subject kav-system-finance --expires 8h)"
  export ICS_TOKEN
  regulator_token="$("$bin/icsctl" token issue --key "$keys/regulator/ics-signing.pem" \
    --system national --role regulator --subject regulator --expires 8h)"
  (umask 077
   "${issue[@]}" --role auditor --subject positiond --expires 30d >"$1/positiond.token"
   "${issue[@]}" --role auditor --subject oversightd --expires 30d >"$1/oversightd.token")
}

start() { # $1 = state dir
  local dir="$1"
  mkdir -p "$dir/nats" "$dir/ledgerd" "$dir/logs"
  "$bin/icsctl" dev certs --dir "$certs" >/dev/null
  "$bin/icsctl" dev nkeys --dir "$nkeys" >/dev/null
  tokens "$dir"
  local nats_bin
  nats_bin="$("$root/deploy/local/install-nats-server.sh")"
  ICS_NATS_LEDGERD_NKEY="$(cat "$nkeys/ledgerd.pub")" \
  ICS_NATS_POSITIOND_NKEY="$(cat "$nkeys/positiond.pub")" \
  ICS_NATS_OVERSIGHTD_NKEY="$(cat "$nkeys/oversightd.pub")" \
  ICS_NATS_READER_NKEY="$(cat "$nkeys/reader.pub")" \
    "$nats_bin" -c "$root/deploy/nats/single.conf" -sd "$dir/nats" >"$dir/logs/nats.log" 2>&1 &
  echo $! >"$dir/nats.pid"
  wait_for "nats-server" "bash -c 'exec 3<>/dev/tcp/127.0.0.1/14222'" "$dir/logs/nats.log"
  LEDGERD_TLS_CERT="$certs/server.pem" LEDGERD_TLS_KEY="$certs/server.key" \
  LEDGERD_AUTH_PUBLIC_KEY="$keys/ics-signing.pub.pem" \
  LEDGERD_CHECKPOINT_KEY="$keys/ledger-checkpoint.pem" \
  LEDGERD_CHECKPOINT_EVERY_EVENTS="${LEDGERD_CHECKPOINT_EVERY_EVENTS:-100}" \
  LEDGERD_CHECKPOINT_EVERY_S="${LEDGERD_CHECKPOINT_EVERY_S:-2}" \
  LEDGERD_NATS_NKEY_SEED_FILE="$nkeys/ledgerd.nk" \
    "$bin/ledgerd" --listen "$grpc_addr" --data-dir "$dir/ledgerd" --system kav --nats-url "$nats_url" \
    >"$dir/logs/ledgerd.log" 2>&1 &
  echo $! >"$dir/ledgerd.pid"
  wait_for "ledgerd" "${ctl[*]} head" "$dir/logs/ledgerd.log"
  POSITIOND_TLS_CERT="$certs/server.pem" POSITIOND_TLS_KEY="$certs/server.key" \
  POSITIOND_LEDGERD_CA="$certs/ca.pem" POSITIOND_LEDGERD_TOKEN_FILE="$dir/positiond.token" \
  POSITIOND_AUTH_PUBLIC_KEY="$keys/ics-signing.pub.pem" \
  POSITIOND_NATS_NKEY_SEED_FILE="$nkeys/positiond.nk" \
    "$bin/positiond" --listen "$position_addr" --data-dir "$dir/positiond" --system kav \
    --nats-url "$nats_url" --ledgerd-url "https://$grpc_addr" --consumer positiond \
    >"$dir/logs/positiond.log" 2>&1 &
  echo $! >"$dir/positiond.pid"
  wait_for "positiond" "${ctl[*]} position-status" "$dir/logs/positiond.log" any
  OVERSIGHTD_TLS_CERT="$certs/server.pem" OVERSIGHTD_TLS_KEY="$certs/server.key" \
  OVERSIGHTD_LEDGERD_CA="$certs/ca.pem" OVERSIGHTD_LEDGERD_TOKEN_FILES="{kav=\"$dir/oversightd.token\"}" \
  OVERSIGHTD_AUTH_PUBLIC_KEY="$keys/regulator/ics-signing.pub.pem" \
  OVERSIGHTD_CHECKPOINT_KEYS="{kav=\"$keys/ledger-checkpoint.pub.pem\"}" \
  OVERSIGHTD_NATS_NKEY_SEED_FILE="$nkeys/oversightd.nk" \
    "$bin/oversightd" --listen "$oversight_addr" --data-dir "$dir/oversightd" \
    --nats-url "$nats_url" --ledgerd "kav=https://$grpc_addr" --consumer oversightd \
    >"$dir/logs/oversightd.log" 2>&1 &
  echo $! >"$dir/oversightd.pid"
  wait_for "oversightd" "${ctl[*]} --token $regulator_token oversight systems" "$dir/logs/oversightd.log"
}

wait_for() { # $1 = name, $2 = probe command, $3 = log[, $4 = any: a failing answer will do]
  for _ in $(seq 1 100); do
    if eval "$2" >/dev/null 2>&1; then return 0; fi
    if [ "${4:-}" = any ] && eval "$2" 2>&1 | grep -qv "connecting to"; then return 0; fi
    sleep 0.1
  done
  echo "$1 did not start; its log says:" >&2
  tail -n 20 "$3" >&2
  exit 1
}

stop() { # $1 = state dir
  local dir="$1"
  for name in oversightd positiond ledgerd nats; do
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
    echo "up: ledgerd https://$grpc_addr, positiond https://$position_addr, oversightd https://$oversight_addr"
    echo "    (CA .local/certs/ca.pem), NATS $nats_url (nkeys in .local/nkeys); data in .local/stack;"
    echo "    'make down' stops it."
    echo "    A token: icsctl token issue --key .local/keys/ics-signing.pem --role system-finance --subject me"
    echo "    (oversightd: --key .local/keys/regulator/ics-signing.pem --system national --role regulator)"
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
    "${ctl[@]}" bus-status --nats-url "$nats_url" --nats-nkey-seed-file "$nkeys/reader.nk" \
      --system kav --wait
    echo "== positiond"
    "${ctl[@]}" position-status --wait
    echo "== the position at M12 (2018/19, year to date)"
    "${ctl[@]}" position --year 2018/19 --month 12
    echo "== the sustainability fund's quarterly tests"
    "${ctl[@]}" fund --year 2018/19 --month 12
    echo "== the regulator's summary (oversightd)"
    head_seq="$("${ctl[@]}" --json head | python3 -c 'import json,sys; print(json.load(sys.stdin)["sequence"])')"
    for _ in $(seq 1 300); do
      "${ctl[@]}" --token "$regulator_token" --json oversight systems | grep "\"sequence\": $head_seq" >/dev/null && break
      sleep 0.1
    done
    "${ctl[@]}" --token "$regulator_token" oversight systems
    "${ctl[@]}" --token "$regulator_token" oversight performance --system kav --year 2018/19 --quarter 4
    echo "== the audit: the whole log verified against the checkpoints the regulator holds"
    for _ in $(seq 1 100); do
      "${ctl[@]}" --token "$regulator_token" --json audit checkpoints --regulator \
        --ledger-key "$keys/ledger-checkpoint.pub.pem" | grep "\"sequence\": $head_seq" >/dev/null && break
      sleep 0.1
    done
    "${ctl[@]}" audit verify --quiet --ledger-key "$keys/ledger-checkpoint.pub.pem" \
      --regulator-token "$regulator_token"
    "${ctl[@]}" audit prove --seq 42 --ledger-key "$keys/ledger-checkpoint.pub.pem" \
      --regulator-token "$regulator_token"
    echo "== a filed return: the system files its M12 position; the auditor checks it against the log"
    # The report as the log gives it at the head, rebuilt here from the log (no positiond),
    # exported, filed (a system.return_filed event naming its fingerprint and sequence), then
    # proved by replaying the log to that sequence again.
    "${ctl[@]}" audit replay position --year 2018/19 --month 12 --to-seq "$head_seq" \
      --export "$dir/position-m12.json" >/dev/null
    filed_seq="$("${ctl[@]}" --json file-return --file "$dir/position-m12.json" |
      python3 -c 'import json,sys; print(json.load(sys.stdin)["last_sequence"])')"
    "${ctl[@]}" audit check-return --seq "$filed_seq" --file "$dir/position-m12.json"
    echo "== the same return with KHFT's actual YTD improved by £100,000 after it was filed"
    python3 - "$dir/position-m12.json" "$dir/position-m12-altered.json" <<'EOF'
import json, sys
report = json.load(open(sys.argv[1]))
for member in report["report"]["Position"]["members"]:
    if member["member"] == "KHFT":
        member["figures"]["actual_ytd"] += 100_000 * 100
json.dump(report, open(sys.argv[2], "w"), indent=1)
EOF
    if "${ctl[@]}" audit check-return --seq "$filed_seq" --file "$dir/position-m12-altered.json" 2>&1; then
      echo "the altered return checked out: the audit is broken" >&2
      exit 1
    fi
    ;;
  *)
    echo "usage: $0 up|down|demo" >&2
    exit 2
    ;;
esac
