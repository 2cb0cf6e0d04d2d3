#!/usr/bin/env bash
# Installs the official AsyncAPI parser (pinned) into .tools/asyncapi with
# npm, for the test that validates schemas/asyncapi.json. Does nothing when
# it is already there. Prints the directory on its last line.
set -euo pipefail
cd "$(dirname "$0")/.."

version="3.6.6"
dir=".tools/asyncapi"
if [ -f "$dir/node_modules/@asyncapi/parser/package.json" ] \
    && grep -q "\"version\": \"${version}\"" "$dir/node_modules/@asyncapi/parser/package.json"; then
    echo "$PWD/$dir"
    exit 0
fi
command -v npm >/dev/null 2>&1 || { echo "npm (Node.js) is needed for the AsyncAPI parser: apt-get install nodejs npm" >&2; exit 1; }
mkdir -p "$dir"
npm install --prefix "$dir" --no-audit --no-fund --silent "@asyncapi/parser@${version}" >&2
echo "$PWD/$dir"
