#!/usr/bin/env bash
# The test command: installs the pinned nats-server into .tools/ when it is
# not there yet (deploy/install-nats-server.sh), then runs every test of the
# workspace against it. Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."

NATS_SERVER_BIN="$(./deploy/install-nats-server.sh | tail -n 1)"
export NATS_SERVER_BIN
echo "tests run against $("$NATS_SERVER_BIN" --version) ($NATS_SERVER_BIN)"
# The official AsyncAPI parser, for the test that validates schemas/asyncapi.json.
ASYNCAPI_PARSER_DIR="$(./deploy/install-asyncapi-parser.sh | tail -n 1)"
export ASYNCAPI_PARSER_DIR
# The outside subscriber example's Python environment (nats-py, jsonschema).
PROLO_EXAMPLE_PYTHON="$(./deploy/install-python-example.sh | tail -n 1)"
export PROLO_EXAMPLE_PYTHON
cargo test --workspace "$@"
