"""The `orchestrate` command: a thin shell over profiles, planning and execution.

Each command reads its inputs, calls one or two functions that do the work, and prints.
Handled errors become one line on stderr and a documented exit code (see the README);
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from orchestrator import __version__, engine, proxy
from orchestrator import bake as bakes
from orchestrator import build as builds
from orchestrator.errors import ExitCode, HandledError
from orchestrator.log import LogFormat, configure, get_logger
from orchestrator.plan import BuildOptions, render_text
from orchestrator.profiles import PROFILES_DIR_ENV, ProfileStore, ProxySettings, json_schema
from orchestrator.urls import redact

app = typer.Typer(
    name="orchestrate",
    help="Docker builds that install Python packages: fast, repeatable and safe.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
profiles_app = typer.Typer(
    help="List, show, validate and describe build profiles.", no_args_is_help=True
)
app.add_typer(profiles_app, name="profiles")
proxy_app = typer.Typer(help="Manage the caching PyPI proxy (proxpi).", no_args_is_help=True)
app.add_typer(proxy_app, name="proxy")
log = get_logger(__name__)


class _State:
    profiles_dir: Path | None = None


state = _State()

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]
DryRunFlag = Annotated[
    bool, typer.Option("--dry-run", help="Print the plan and the docker command; run nothing.")
]
NoProxyFlag = Annotated[
    bool, typer.Option("--no-proxy", help="Skip the proxy: use locked cache mounts.")
]
FreshFlag = Annotated[
    bool, typer.Option("--fresh", help="Rebuild every RUN step but keep the package cache.")
]
ProfileOption = Annotated[
    str | None,
    typer.Option(
        "--profile", "-p", help="Take the proxy settings from this profile [default: built-in]."
    ),
]


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
        typer.Option(
            "--log-format", help="auto (console on a terminal, else json), console or json."
        ),
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
    dry_run: DryRunFlag = False,
    no_proxy: NoProxyFlag = False,
    fresh: FreshFlag = False,
    as_json: JsonFlag = False,
) -> None:
    """Build the image a profile describes, through the proxy or with cache mounts."""
    if not dry_run:
        engine.ensure_engine()
    options = BuildOptions(no_proxy=no_proxy, fresh=fresh)
    plan = builds.plan_for(_store(), profile, options, dry_run=dry_run)
    if dry_run:
        builds.keep_rendered(plan)
        _print_json(plan.as_dict()) if as_json else typer.echo(render_text(plan))
        return
    log.info("build", profile=plan.profile, mode=plan.mode, reason=plan.mode_reason)
    builds.execute(plan)
    log.info("built", profile=plan.profile, mode=plan.mode, tags=list(plan.tags))


@app.command()
def bake(
    profile: Annotated[
        str, typer.Option("--profile", "-p", help="Profile whose wiring applies to every target.")
    ],
    targets: Annotated[list[str] | None, typer.Argument(help="Targets or groups to bake.")] = None,
    files: Annotated[
        list[Path] | None,
        typer.Option("--file", "-f", help="Bake files [default: ./docker-bake.hcl]."),
    ] = None,
    print_override: Annotated[
        bool,
        typer.Option("--print", help="Print the override JSON for plain `docker buildx bake`."),
    ] = False,
    dry_run: DryRunFlag = False,
    no_proxy: NoProxyFlag = False,
    fresh: FreshFlag = False,
) -> None:
    """Run `docker buildx bake` with a profile's wiring applied to every selected target."""
    engine.ensure_engine()
    resolved = _store().resolve(profile)
    options = BuildOptions(no_proxy=no_proxy, fresh=fresh)
    chosen = files or [Path("docker-bake.hcl")]
    plan = bakes.prepare(
        resolved, chosen, targets or [], options, dry_run=dry_run or print_override
    )
    if print_override:
        _print_json(bakes.export(plan))
    elif dry_run:
        for name, target_plan in plan.plans.items():
            typer.echo(f"== target {name}\n{render_text(target_plan, command=False)}\n")
        typer.echo(f"command:\n  {shlex.join(plan.argv(Path('OVERRIDE.json')))}")
    else:
        bakes.execute(plan)


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
            error = redact(exc.message)
            rows.append({"name": name, "description": "", "valid": False, "error": error})
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
    names: Annotated[
        list[str] | None, typer.Argument(help="Profiles to check [default: all].")
    ] = None,
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
            typer.echo(f"invalid  {name}: {redact(exc.message)}", err=True)
    if failed:
        raise typer.Exit(ExitCode.BAD_INPUT)


@profiles_app.command("schema")
def profiles_schema() -> None:
    """Print the JSON Schema of profile files, for YAML editors."""
    _print_json(json_schema())


def _proxy_settings(profile: str | None) -> ProxySettings:
    return _store().resolve(profile).profile.proxy if profile else ProxySettings()


def _print_status(found: proxy.ProxyStatus, as_json: bool) -> None:
    if as_json:
        _print_json(found.as_dict())
        return
    for key, value in found.as_dict().items():
        typer.echo(f"{key + ':':<14}{'' if value is None else value}")


@proxy_app.command("up")
def proxy_up(profile: ProfileOption = None, as_json: JsonFlag = False) -> None:
    """Find, start or create the proxy and wait until it serves."""
    engine.ensure_engine()
    requester = proxy.Requester(profile=profile or "", replace=True)
    _print_status(proxy.ensure(_proxy_settings(profile), requester=requester), as_json)


@proxy_app.command("status")
def proxy_status(profile: ProfileOption = None, as_json: JsonFlag = False) -> None:
    """Report the proxy's state and whether it serves; exit 5 when it does not."""
    settings = _proxy_settings(profile)
    if not settings.url:
        engine.ensure_engine()
    found = proxy.status(settings)
    _print_status(found, as_json)
    if not found.healthy:
        raise typer.Exit(ExitCode.PROXY_UNAVAILABLE)


@proxy_app.command("down")
def proxy_down(
    profile: ProfileOption = None,
    purge: Annotated[
        bool, typer.Option("--purge", help="Also remove the cache volume and our network.")
    ] = False,
) -> None:
    """Stop and remove the proxy container (the cache volume stays unless --purge)."""
    engine.ensure_engine()
    for line in proxy.down(_proxy_settings(profile), purge=purge) or ["nothing to remove"]:
        typer.echo(line)


@proxy_app.command("logs")
def proxy_logs(
    profile: ProfileOption = None,
    tail: Annotated[int | None, typer.Option("--tail", help="Only the last N lines.")] = None,
) -> None:
    """Print the proxy container's logs."""
    engine.ensure_engine()
    typer.echo(proxy.logs(_proxy_settings(profile), tail=tail), nl=False)


@proxy_app.command("image")
def proxy_image(
    profile: ProfileOption = None,
    base_image: Annotated[
        str | None, typer.Option("--base-image", help="Base for a local build of the image.")
    ] = None,
) -> None:
    """Make the proxy image available: present, pulled, or built locally."""
    engine.ensure_engine()
    settings = _proxy_settings(profile)
    if base_image:
        settings = settings.model_copy(update={"base_image": base_image})
    typer.echo(proxy.ensure_image(settings))


def main() -> None:
    """Entry point: handled errors become one line and their exit code."""
    try:
        app()
    except HandledError as exc:
        print(f"orchestrate: error: {redact(exc.message)}", file=sys.stderr)
        sys.exit(int(exc.exit_code))
