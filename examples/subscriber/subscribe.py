#!/usr/bin/env python3
"""Follow one clinic's prolo-audit events and validate each against the
committed JSON Schemas, as another clinic system would.

Prints one JSON line per event: its stream sequence, type, subject and
whether it is valid (with the schema's errors when not). Exits 1 when any
event was invalid.

    python3 subscribe.py --url nats://127.0.0.1:4222 --clinic riverside
    python3 subscribe.py --clinic riverside --count 10      # stop after 10

It reads the stream with an ordered JetStream consumer from the start
(`--new` for only what arrives from now on); it never acknowledges, edits
or deletes anything. With a deployment's credentials, use the `reader`
user: nats://reader:PASSWORD@host:4222.
"""

import argparse
import asyncio
import json
import pathlib
import sys
from urllib.parse import urlparse

import jsonschema
import nats
from nats.js.api import DeliverPolicy

HERE = pathlib.Path(__file__).resolve().parent
DEFAULT_SCHEMAS = HERE.parent.parent / "schemas" / "json"


def validators(schemas: pathlib.Path) -> dict:
    """One validator per event type, from `<type>.schema.json`."""
    found = {}
    for path in sorted(schemas.glob("*.schema.json")):
        name = path.name.removesuffix(".schema.json")
        schema = json.loads(path.read_text())
        found[name] = jsonschema.Draft202012Validator(
            schema, format_checker=jsonschema.FormatChecker()
        )
    return found


def check(checks: dict, data: bytes) -> tuple[str, list[str]]:
    """The event's type and what is wrong with it (empty: valid)."""
    try:
        event = json.loads(data)
    except ValueError as e:
        return "", [f"not JSON: {e}"]
    if not isinstance(event, dict):
        return "", ["not a JSON object"]
    event_type = event.get("event_type", "")
    validator = checks.get(event_type)
    if validator is None:
        return event_type, [f"unknown event type {event_type!r}"]
    errors = [
        f"{'/'.join(str(p) for p in e.absolute_path) or '(event)'}: {e.message}"
        for e in validator.iter_errors(event)
    ]
    return event_type, errors


async def follow(args) -> int:
    checks = validators(pathlib.Path(args.schemas))
    # A user reads only its own inbox, _INBOX_<user> (deploy/nats/auth.conf).
    user = urlparse(args.url).username
    inbox = {"inbox_prefix": f"_INBOX_{user}"} if user else {}
    nc = await nats.connect(args.url, name="outside-subscriber", **inbox)
    js = nc.jetstream()
    policy = DeliverPolicy.NEW if args.new else DeliverPolicy.ALL
    sub = await js.subscribe(
        f"clinic.{args.clinic}.>", ordered_consumer=True, deliver_policy=policy
    )
    seen, invalid = 0, 0
    try:
        while args.count is None or seen < args.count:
            msg = await sub.next_msg(timeout=args.timeout)
            event_type, errors = check(checks, msg.data)
            seen += 1
            invalid += bool(errors)
            line = {
                "seq": msg.metadata.sequence.stream,
                "subject": msg.subject,
                "event_type": event_type,
                "valid": not errors,
            }
            if errors:
                line["errors"] = errors
            print(json.dumps(line), flush=True)
    except nats.errors.TimeoutError:
        print(f"no event for {args.timeout} s; stopping", file=sys.stderr)
    finally:
        await nc.close()
    print(f"{seen} events, {invalid} invalid", file=sys.stderr)
    return 1 if invalid else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="nats://127.0.0.1:4222")
    parser.add_argument("--clinic", required=True)
    parser.add_argument("--count", type=int, help="stop after this many events")
    parser.add_argument("--new", action="store_true", help="only events from now on")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for an event")
    parser.add_argument("--schemas", default=str(DEFAULT_SCHEMAS), help="the JSON Schemas directory")
    return asyncio.run(follow(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
