"""The command line as data: every command, its options and the handler that runs it.

argparse rather than a framework: it imports in milliseconds, and start-up is part of
orchestrator's overhead on every build. A usage mistake is one line and exit code 2,
like every other bad input.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

from orchestrator import __version__
from orchestrator.errors import ExitCode

if TYPE_CHECKING:
    Commands = argparse._SubParsersAction[Any]


class _Parser(argparse.ArgumentParser):
    # The positional that takes every word after the first `--` as it is (`orchestrate run`):
    # argparse alone lets options after the profile swallow the `--` (python/cpython#53580).
    after_dashes: str | None = None

    def parse_known_args(  # type: ignore[override]
        self, args: list[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        words = list(sys.argv[1:] if args is None else args)
        if self.after_dashes is None or "--" not in words:
            return super().parse_known_args(words, namespace)
        cut = words.index("--")
        parsed, extras = super().parse_known_args(words[:cut], namespace)
        before = getattr(parsed, self.after_dashes) or []
        if before:
            self.error(f"give the command either before or after '--', not both: {before[0]!r}")
        setattr(parsed, self.after_dashes, words[cut + 1 :])
        return parsed, extras

    def error(self, message: str) -> NoReturn:
        from orchestrator.cli import print_error  # noqa: PLC0415 - the entry point's printer

        command = self.prog.removeprefix("orchestrate").strip() or "orchestrate"
        print_error(f"{command}: {message} (see `{self.prog} --help`)", int(ExitCode.BAD_INPUT))
        sys.exit(int(ExitCode.BAD_INPUT))


def build_parser(args: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser for ``args``: with only the command they name, when they name one, since
    building every command's options (argparse looks up each help text's translation) is
    a tenth of a remembered build's start-up; with every command otherwise (``--help``, no
    command, a mistyped one), so that help and usage errors list them all."""
    parser = _Parser(
        prog="orchestrate",
        description="Docker builds that install Python packages: fast, repeatable and safe.",
    )
    parser.add_argument("--version", action="version", version=f"orchestrate {__version__}")
    _global_options(parser, {"profiles_dir": None, "log_format": "auto", "verbose": False})
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    chosen = named_command(args)
    for name, add in _COMMANDS.items():
        if chosen is None or name == chosen:
            add(commands)
    return parser


def _global_options(parser: argparse.ArgumentParser, defaults: dict[str, Any]) -> None:
    """The options every command takes, before its name or after it (`orchestrate build
    app -v`). A command's parser gives them no default (``SUPPRESS``), so that one given
    before the command's name is not reset by the command's parser."""
    group = parser.add_argument_group("global options")
    group.add_argument(
        "--profiles-dir",
        default=defaults.get("profiles_dir", argparse.SUPPRESS),
        help="directory of profile YAML files (env ORCHESTRATE_PROFILES_DIR; default ./profiles)",
    )
    group.add_argument(
        "--log-format",
        choices=("auto", "console", "json"),
        default=defaults.get("log_format", argparse.SUPPRESS),
        help="auto (as console): lines for people, coloured on a terminal; "
        "json: every stderr line a JSON object, Docker's output carried as events",
    )
    group.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=defaults.get("verbose", argparse.SUPPRESS),
        help="log debug details",
    )


_GLOBAL_VALUES = ("--profiles-dir", "--log-format")  # global options that take a value


def named_command(args: Sequence[str] | None) -> str | None:
    """The command ``args`` name, if a known one comes before any help option; ``--version``
    when that comes first (it needs no command at all)."""
    words = list(args or ())
    index = 0
    while index < len(words):
        word = words[index]
        if word in ("-h", "--help"):
            return None
        if word == "--version":
            return word
        if word in _GLOBAL_VALUES:
            index += 2
            continue
        if not word.startswith("-"):
            return word if word in _COMMANDS else None
        index += 1
    return None


def _command(
    commands: Commands,
    name: str,
    handler: str,
    help_text: str,
) -> argparse.ArgumentParser:
    command: argparse.ArgumentParser = commands.add_parser(
        name, help=help_text, description=help_text
    )
    command.set_defaults(handler=f"orchestrator.cli.{handler}")
    _global_options(command, {})
    return command


def _json(command: argparse.ArgumentParser) -> None:
    command.add_argument("--json", action="store_true", help="print JSON instead of text")


def _build_options(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--dry-run", action="store_true", help="print the plan and the docker command; run nothing"
    )
    command.add_argument(
        "--no-proxy", action="store_true", help="skip the proxy: use locked cache mounts"
    )
    command.add_argument(
        "--fresh", action="store_true", help="rebuild every RUN step but keep the package cache"
    )


def _build(commands: Commands) -> None:
    command = _command(commands, "build", "commands.build", "Build the image a profile describes.")
    command.add_argument("profile", metavar="PROFILE", help="name of the profile to build")
    _build_options(command)
    _json(command)


def _bake(commands: Commands) -> None:
    command = _command(
        commands,
        "bake",
        "commands.bake",
        "Run `docker buildx bake` with a profile's wiring applied to every selected target.",
    )
    command.add_argument("targets", metavar="TARGET", nargs="*", help="targets or groups")
    command.add_argument(
        "--profile", "-p", required=True, help="profile whose wiring applies to every target"
    )
    command.add_argument(
        "--file", "-f", dest="files", action="append", help="bake files [./docker-bake.hcl]"
    )
    command.add_argument(
        "--print",
        dest="print_override",
        action="store_true",
        help="write the override files and print the plain `docker buildx bake` command",
    )
    _build_options(command)
    _json(command)


def _run(commands: Commands) -> None:
    command = _command(
        commands,
        "run",
        "run.run",
        "Run a command in a container of the profile's image, wired as its builds are.",
    )
    assert isinstance(command, _Parser)
    command.after_dashes = "command"
    command.add_argument("profile", metavar="PROFILE", help="name of the profile")
    command.add_argument(
        "command", metavar="COMMAND", nargs="*", help="after --: the command and its arguments"
    )
    _image(command)
    command.add_argument(
        "--no-proxy", action="store_true", help="skip the proxy: use the cache volume"
    )
    command.add_argument(
        "--docker-opt",
        dest="docker_opts",
        action="append",
        default=[],
        metavar="OPT",
        help="more `docker run` options, split as a shell would (repeatable): "
        "--docker-opt=--memory=1g, --docker-opt '-e NAME=value'",
    )
    command.add_argument(
        "--keep", action="store_true", help="keep the container when it exits (no --rm)"
    )
    command.add_argument(
        "--dry-run", action="store_true", help="print the plan and the docker command; run nothing"
    )
    _json(command)


def _env(commands: Commands) -> None:
    command = _command(
        commands,
        "env",
        "run.env",
        "Print a profile's container wiring for tools that start containers themselves.",
    )
    command.add_argument("profile", metavar="PROFILE", help="name of the profile")
    command.add_argument(
        "--format",
        choices=("shell", "json", "docker", "compose"),
        default="shell",
        help="export lines, everything as JSON, `docker run` options, or a compose override",
    )
    command.add_argument(
        "--service",
        dest="services",
        action="append",
        default=[],
        metavar="NAME",
        help="compose services to wire (repeatable) [every service of ./compose.yaml]",
    )
    _image(command)
    command.add_argument(
        "--no-proxy", action="store_true", help="skip the proxy: use the cache volume"
    )


def _image(command: argparse.ArgumentParser) -> None:
    command.add_argument("--image", help="image to run [the profile's first tag]")


def _profiles(commands: Commands) -> None:
    group = commands.add_parser(
        "profiles", help="List, show, validate and describe build profiles."
    )
    _global_options(group, {})
    sub = group.add_subparsers(title="commands", metavar="COMMAND", required=True)
    listing = _command(sub, "list", "profiles.list_profiles", "List the profiles.")
    _json(listing)
    show = _command(sub, "show", "profiles.show", "Show a profile fully resolved (parents merged).")
    show.add_argument("name", metavar="NAME")
    _json(show)
    validate = _command(
        sub, "validate", "profiles.validate", "Check profiles; exit 2 if any is invalid."
    )
    validate.add_argument("names", metavar="NAME", nargs="*", help="profiles [all]")
    _command(sub, "schema", "profiles.schema", "Print the JSON Schema of profile files.")


def _proxy(commands: Commands) -> None:
    group = commands.add_parser("proxy", help="Manage the caching PyPI proxy (proxpi).")
    _global_options(group, {})
    sub = group.add_subparsers(title="commands", metavar="COMMAND", required=True)

    def proxy_command(name: str, help_text: str) -> argparse.ArgumentParser:
        command = _command(sub, name, f"proxy.{name}", help_text)
        command.add_argument(
            "--profile", "-p", help="take the proxy settings from this profile [built-in]"
        )
        return command

    _json(proxy_command("up", "Find, start or create the proxy and wait until it serves."))
    _json(proxy_command("status", "Report the proxy's state; exit 5 when it does not serve."))
    down = proxy_command("down", "Stop and remove the proxy container (the cache stays).")
    down.add_argument(
        "--purge", action="store_true", help="also remove the cache volume and our network"
    )
    logs = proxy_command("logs", "Print the proxy container's logs.")
    logs.add_argument("--tail", type=int, help="only the last N lines")
    image = proxy_command("image", "Make the proxy image available (present, pulled, built).")
    image.add_argument("--base-image", help="base for a local build of the image")
    _json(proxy_command("stats", "The cache as a whole: size, files, hits, largest projects."))
    prune = proxy_command("prune", "Remove cached package files; safe while builds run.")
    prune.add_argument(
        "--older-than", metavar="DURATION", help="files unused for this long: 30m, 12h, 7d, 0s"
    )
    prune.add_argument(
        "--max-size", metavar="SIZE", help="then the least recently used until this fits: 500M, 2G"
    )
    prune.add_argument("--dry-run", action="store_true", help="say what would go; remove nothing")
    _json(prune)


_COMMANDS: dict[str, Callable[[Commands], None]] = {
    "build": _build,
    "bake": _bake,
    "run": _run,
    "env": _env,
    "profiles": _profiles,
    "proxy": _proxy,
}
