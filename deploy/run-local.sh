#!/usr/bin/env bash
# Runs prolo-audit on this machine: installs nats-server from Debian's
# packages when it is missing, builds, and runs `prolo-audit up` (which uses
# NATS_URL when a server answers there, else starts a local nats-server with
# its store under ./data). Extra arguments go to `up`.
set -euo pipefail
cd "$(dirname "$0")/.."

export PATH="$PATH:/usr/sbin:/usr/local/sbin"
if ! command -v nats-server >/dev/null 2>&1; then
    echo "nats-server not found: installing Debian's package (needs root or sudo)"
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq nats-server
fi

cargo build --release -p prolo-cli
exec ./target/release/prolo-audit up "$@"
