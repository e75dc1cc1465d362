"""`orchestrate profiles list|show|validate|schema`."""

from __future__ import annotations

import argparse

from orchestrator.cli.common import print_json, store
from orchestrator.errors import ExitCode, HandledError
from orchestrator.profiles import json_schema
from orchestrator.urls import redact


def list_profiles(options: argparse.Namespace) -> None:
    """List the profiles in the profiles directory."""
    profiles = store(options)
    rows = []
    for name in profiles.names():
        try:
            description = profiles.resolve(name).profile.description
            rows.append({"name": name, "description": description, "valid": True})
        except HandledError as exc:
            error = redact(exc.message)
            rows.append({"name": name, "description": "", "valid": False, "error": error})
    if options.json:
        print_json(rows)
        return
    for row in rows:
        note = row["description"] if row["valid"] else f"INVALID: {row['error']}"
        print(f"{row['name']:<20} {note}")


def show(options: argparse.Namespace) -> None:
    """Show a profile fully resolved: its parents merged and its paths absolute."""
    data = store(options).resolve(options.name).as_dict()
    if options.json:
        print_json(data)
    else:
        import yaml  # noqa: PLC0415

        print(yaml.safe_dump(data, sort_keys=False).rstrip())


def validate(options: argparse.Namespace) -> int:
    """Check profiles; exit 2 if any is invalid, with one line for each problem."""
    import sys  # noqa: PLC0415

    profiles = store(options)
    failed = False
    for name in options.names or profiles.names():
        try:
            profiles.resolve(name)
            print(f"ok       {name}")
        except HandledError as exc:
            failed = True
            print(f"invalid  {name}: {redact(exc.message)}", file=sys.stderr)
    return int(ExitCode.BAD_INPUT) if failed else 0


def schema(options: argparse.Namespace) -> None:
    """Print the JSON Schema of profile files, for YAML editors."""
    print_json(json_schema())
