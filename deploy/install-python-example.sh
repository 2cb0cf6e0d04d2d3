#!/usr/bin/env bash
# Makes the Python environment of the outside subscriber example
# (examples/subscriber, pinned requirements) in .tools/py-example. Does
# nothing when it is already there. Prints its python on its last line.
set -euo pipefail
cd "$(dirname "$0")/.."

dir=".tools/py-example"
requirements="examples/subscriber/requirements.txt"
stamp="$dir/.requirements"
if [ -x "$dir/bin/python" ] && cmp -s "$requirements" "$stamp"; then
    echo "$PWD/$dir/bin/python"
    exit 0
fi
python3 -m venv "$dir" >&2 || { echo "python3 -m venv failed: apt-get install python3-venv" >&2; exit 1; }
"$dir/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements" >&2
cp "$requirements" "$stamp"
echo "$PWD/$dir/bin/python"
