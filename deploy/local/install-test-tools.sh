#!/usr/bin/env bash
# Installs what the tests need beyond the Rust toolchain and nats-server: strace, with which
# the store's durability test watches every acknowledgement follow an fdatasync. From
# Debian's packages, as root or through sudo; does nothing when it is already there.
set -euo pipefail
command -v strace >/dev/null 2>&1 && exit 0
echo "installing strace from Debian's packages" >&2
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
$sudo apt-get update -qq >&2
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq strace >&2
command -v strace >/dev/null 2>&1 || { echo "strace did not install" >&2; exit 1; }
