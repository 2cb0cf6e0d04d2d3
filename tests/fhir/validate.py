#!/usr/bin/env python3
"""Validates a FHIR R4 Bundle file: every resource parses strictly with the
fhir.resources R4 models (unknown elements, wrong types and missing
required elements are errors), and every reference inside the bundle
resolves to an entry. Prints a JSON summary; exits 1 on any problem.

    python3 validate.py bundle.json
"""

import collections
import json
import sys

from fhir.resources import __fhir_version__
from fhir.resources.bundle import Bundle


def references(value, found):
    if isinstance(value, dict):
        ref = value.get("reference")
        if isinstance(ref, str):
            found.append(ref)
        for v in value.values():
            references(v, found)
    elif isinstance(value, list):
        for v in value:
            references(v, found)
    return found


def main() -> int:
    data = json.load(open(sys.argv[1]))
    problems = []
    try:
        Bundle.parse_obj(data)
    except Exception as e:  # the models say what is wrong, element by element
        problems.append(str(e))
    present = set()
    counts = collections.Counter()
    for entry in data.get("entry", []):
        resource = entry["resource"]
        kind, rid = resource["resourceType"], resource.get("id")
        present.add(f"{kind}/{rid}")
        counts[kind] += 1
        if entry.get("fullUrl", "").rsplit("/", 2)[-2:] != [kind, rid]:
            problems.append(f"fullUrl {entry.get('fullUrl')} does not name {kind}/{rid}")
    unresolved = sorted(
        {r for r in references(data.get("entry", []), []) if r.split("/_history/")[0] not in present}
    )
    if unresolved:
        problems.append(f"unresolved references: {unresolved}")
    print(json.dumps({"fhir_version": __fhir_version__, "valid": not problems, "resources": counts, "problems": problems}))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
