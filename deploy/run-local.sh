#!/usr/bin/env bash
# Runs prolo-audit on this machine: installs the pinned nats-server into
# .tools/ when it is missing (deploy/install-nats-server.sh), builds, and runs
# `prolo-audit up` (which uses NATS_URL when a server answers there, and
# warns when that server does not fsync before it acknowledges; else it
# starts the pinned nats-server with fsync before ack, its store under
# ./data). Extra arguments go to `up`.
set -euo pipefail
cd "$(dirname "$0")/.."

NATS_SERVER_BIN="$(./deploy/install-nats-server.sh | tail -n 1)"
export NATS_SERVER_BIN

cargo build --release -p prolo-cli
exec ./target/release/prolo-audit up "$@"
