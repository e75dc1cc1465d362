"""The `orchestrate` command: a thin shell over profiles, planning and execution.

Each command reads its inputs, calls one or two functions that do the work, and prints.
Handled errors become one line on stderr and a documented exit code (see the README);
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from orchestrator import __version__, engine
from orchestrator.errors import ExitCode, HandledError
from orchestrator.host import gather_facts
from orchestrator.log import LogFormat, configure, get_logger
from orchestrator.plan import plan_build, render_text
from orchestrator.profiles import PROFILES_DIR_ENV, ProfileStore, json_schema

app = typer.Typer(
    name="orchestrate",
    help="Docker builds that install Python packages: fast, repeatable and safe.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
profiles_app = typer.Typer(help="List, show, validate and describe build profiles.", no_args_is_help=True)
app.add_typer(profiles_app, name="profiles")
log = get_logger(__name__)


class _State:
    profiles_dir: Path | None = None


state = _State()

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"orchestrate {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    profiles_dir: Annotated[
        Path | None,
        typer.Option(
            "--profiles-dir",
            envvar=PROFILES_DIR_ENV,
            help="Directory of profile YAML files [default: ./profiles].",
        ),
    ] = None,
    log_format: Annotated[
        str,
        typer.Option("--log-format", help="auto (console on a terminal, else json), console or json."),
    ] = "auto",
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log debug details.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    if log_format not in ("auto", "console", "json"):
        raise typer.BadParameter("must be auto, console or json", param_hint="--log-format")
    fmt: LogFormat = log_format  # type: ignore[assignment]
    configure(fmt, verbose=verbose)
    state.profiles_dir = profiles_dir


def _store() -> ProfileStore:
    return ProfileStore.from_option(state.profiles_dir)


def _print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, sort_keys=False))


@app.command()
def build(
    profile: Annotated[str, typer.Argument(help="Name of the profile to build.")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the plan and the docker command; run nothing.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Build the image a profile describes."""
    resolved = _store().resolve(profile)
    plan = plan_build(resolved, gather_facts())
    if dry_run:
        _print_json(plan.as_dict()) if as_json else typer.echo(render_text(plan))
        return
    engine.ensure_engine()
    log.info("build", profile=plan.profile, tags=list(plan.tags))
    engine.run_streaming(plan.argv)
    log.info("built", profile=plan.profile, tags=list(plan.tags))


@profiles_app.command("list")
def profiles_list(as_json: JsonFlag = False) -> None:
    """List the profiles in the profiles directory."""
    store = _store()
    rows = []
    for name in store.names():
        try:
            description = store.resolve(name).profile.description
            rows.append({"name": name, "description": description, "valid": True})
        except HandledError as exc:
            rows.append({"name": name, "description": "", "valid": False, "error": exc.message})
    if as_json:
        _print_json(rows)
        return
    for row in rows:
        note = row["description"] if row["valid"] else f"INVALID: {row['error']}"
        typer.echo(f"{row['name']:<20} {note}")


@profiles_app.command("show")
def profiles_show(
    name: Annotated[str, typer.Argument(help="Profile name.")], as_json: JsonFlag = False
) -> None:
    """Show a profile fully resolved: its parents merged and its paths absolute."""
    data = _store().resolve(name).as_dict()
    if as_json:
        _print_json(data)
    else:
        typer.echo(yaml.safe_dump(data, sort_keys=False).rstrip())


@profiles_app.command("validate")
def profiles_validate(
    names: Annotated[list[str] | None, typer.Argument(help="Profiles to check [default: all].")] = None,
) -> None:
    """Check profiles; exit 2 if any is invalid, with one line for each problem."""
    store = _store()
    failed = False
    for name in names or store.names():
        try:
            store.resolve(name)
            typer.echo(f"ok       {name}")
        except HandledError as exc:
            failed = True
            typer.echo(f"invalid  {name}: {exc.message}", err=True)
    if failed:
        raise typer.Exit(ExitCode.BAD_INPUT)


@profiles_app.command("schema")
def profiles_schema() -> None:
    """Print the JSON Schema of profile files, for YAML editors."""
    _print_json(json_schema())


def main() -> None:
    """Entry point: handled errors become one line and their exit code."""
    try:
        app()
    except HandledError as exc:
        print(f"orchestrate: error: {exc.message}", file=sys.stderr)
        sys.exit(int(exc.exit_code))
