#!/usr/bin/env bash
# Makes the Python environment of the outside subscriber example
# (examples/subscriber) and of the FHIR validation (tests/fhir), pinned
# requirements, in .tools/py-example. Does nothing when it is already
# there. Prints its python on its last line.
set -euo pipefail
cd "$(dirname "$0")/.."

dir=".tools/py-example"
stamp="$dir/.requirements"
wanted="$(cat examples/subscriber/requirements.txt tests/fhir/requirements.txt)"
if [ -x "$dir/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$wanted" ]; then
    echo "$PWD/$dir/bin/python"
    exit 0
fi
python3 -m venv "$dir" >&2 || { echo "python3 -m venv failed: apt-get install python3-venv" >&2; exit 1; }
"$dir/bin/python" -m pip install --quiet --disable-pip-version-check \
    -r examples/subscriber/requirements.txt -r tests/fhir/requirements.txt >&2
printf '%s' "$wanted" > "$stamp"
echo "$PWD/$dir/bin/python"
