#!/usr/bin/env bash
# Installs what the tests need beyond the Rust toolchain and nats-server:
# - strace, with which the store's durability test watches every acknowledgement follow an
#   fdatasync, from Debian's packages (as root or through sudo);
# - the Python gRPC client the end-to-end tests drive ledgerd with as a finance team's script
#   would (grpcio, its code generator grpcio-tools, and grpcio-status for the standard status
#   details helper), from PyPI into the git-ignored .local/py, which those tests put on
#   PYTHONPATH. Pinned, so every machine runs the same client.
# Does nothing for what is already there.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"

if ! command -v strace >/dev/null 2>&1; then
  echo "installing strace from Debian's packages" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq strace >&2
  command -v strace >/dev/null 2>&1 || { echo "strace did not install" >&2; exit 1; }
fi

grpc="1.85.1"
py="$root/.local/py"
have_python_grpc() {
  PYTHONPATH="$py" python3 - "$grpc" <<'EOF' 2>/dev/null
import sys
import grpc, grpc_status.rpc_status, grpc_tools.protoc
sys.exit(0 if grpc.__version__ == sys.argv[1] else 1)
EOF
}
if ! have_python_grpc; then
  echo "installing grpcio, grpcio-tools and grpcio-status $grpc from PyPI into .local/py" >&2
  rm -rf "$py"
  python3 -m pip install --quiet --disable-pip-version-check --no-warn-script-location \
    --target "$py" "grpcio==$grpc" "grpcio-tools==$grpc" "grpcio-status==$grpc" >&2
  have_python_grpc || { echo "the Python gRPC packages do not import from $py" >&2; exit 1; }
fi
