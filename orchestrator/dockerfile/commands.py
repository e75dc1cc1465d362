"""What a RUN step's command does with Python packages, read from its words.

This is reading, not parsing a shell: it finds installers by name, the options that
point them at an index, and uv project commands with the options that matter for a
lock file. Where it cannot tell, wiring leaves the step as written and says so.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# The installers orchestrator knows how to serve, by the word that starts them.
INSTALLERS = {
    "pip": "pip",
    "pip3": "pip",
    "uv": "uv",
    "poetry": "poetry",
    "pip-sync": "pip-tools",
    "pip-compile": "pip-tools",
    "pipenv": "pipenv",
    "pdm": "pdm",
}
_VERSION_SUFFIX = re.compile(r"(?<=^pip)[0-9.]+$")
_PYTHON_M = re.compile(r"\bpython[0-9.]*\s+-m\s+(pip|uv|piptools)\b")
_WORDS = re.compile(r"[\s;&|()`]+")
_INDEX_OPTIONS = re.compile(
    r"(?<![\w-])(--index-url|--extra-index-url|-i|--index|--default-index)(?:=|\s+)([^\s;&|]+)"
)
_SEGMENTS = re.compile(r"&&|\|\||[;|\n]")
_UV_PROJECT = re.compile(
    r"(?<![\w/.-])uv\s+((?:--?[\w-]+(?:[= ][^\s;&|-][^\s;&|]*)?\s+)*)(sync|run)\b([^;&|\n]*)"
)
_OPTION_VALUE = r"(?:=|\s+)([^\s;&|]+)"


# Words that may come before a command in a simple command: shell keywords, wrappers
# that run the rest, and variable assignments (NAME=value).
_PREFIXES = frozenset({"then", "do", "else", "exec", "env", "sudo", "time", "nohup", "!", "{"})
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


def _commands(text: str) -> set[str]:
    """The command each simple command of ``text`` runs, by its file name (`venv/bin/pip`
    is pip, `pip3.11` is pip)."""
    found = set()
    for segment in segments(text.replace("(", " ").replace("`", " ")):
        words = [w for w in _WORDS.split(segment) if w]
        while words and (words[0] in _PREFIXES or _ASSIGNMENT.match(words[0])):
            words.pop(0)
        if words:
            found.add(_VERSION_SUFFIX.sub("", words[0].rsplit("/", 1)[-1]))
    return found


def installers(text: str) -> frozenset[str]:
    """The installers a command runs: pip, uv, poetry, pip-tools, pipenv, pdm. A tool
    counts where a command starts (`pip install poetry` runs pip, not poetry)."""
    text = re.sub(r"\buv\s+pip\b", "uv", text)  # `uv pip install` is uv, not pip
    found = {INSTALLERS[word] for word in _commands(text) if word in INSTALLERS}
    for match in _PYTHON_M.finditer(text):
        found.add({"piptools": "pip-tools"}.get(match.group(1), match.group(1)))
    if "pip-tools" in found and not _PIP_TOOLS.search(text):
        found.discard("pip-tools")
    return frozenset(found)


_PIP_TOOLS = re.compile(r"\bpip-(?:sync|compile)\b|piptools\s+(?:sync|compile)")
_COMPILES = re.compile(r"\bpip-compile\b|piptools\s+compile")
_NO_CACHE = re.compile(r"(?<![\w-])--no-cache(?:-dir)?\b")


def compiles(text: str) -> bool:
    """pip-compile writes the index it used into its output (``--emit-index-url`` is its
    default): pointed at the proxy, the proxy's address would be in that file."""
    return bool(_COMPILES.search(text))


def disabled_caches(text: str) -> list[str]:
    """The installers told to use no cache (``--no-cache-dir``, uv's ``--no-cache``, or
    PIP_NO_CACHE_DIR), by the command that says it: `uv pip install --no-cache-dir` is uv's."""
    found = {"pip"} if "PIP_NO_CACHE_DIR" in text else set()
    for segment in segments(text):
        if _NO_CACHE.search(segment):
            tools = installers(segment)
            found |= {"uv"} if "uv" in tools else tools & {"pip", "pip-tools", "pipenv"}
    return sorted({"pip" if tool in ("pip-tools", "pipenv") else tool for tool in found})


def segments(text: str) -> list[str]:
    """The simple commands of a step, split at ``&&``, ``||``, ``;``, pipes and newlines."""
    return _SEGMENTS.split(text)


def index_options(text: str) -> list[str]:
    """Index options given to an installer on the command line (``--index-url URL``...)."""
    return [
        f"{m.group(1)} {m.group(2)}"
        for segment in segments(text)
        if installers(segment)
        for m in _INDEX_OPTIONS.finditer(segment)
    ]


@dataclass(frozen=True)
class UvProject:
    """A ``uv sync`` or ``uv run`` in a step: where its project is and how it treats the lock."""

    command: str  # sync or run
    directory: str | None  # --project or --directory, as written
    locked: bool  # --locked: the lock must match the project; uv never writes it
    frozen: bool  # --frozen: the lock is used as is; uv never writes it

    @property
    def reads_lock_only(self) -> bool:
        return self.locked or self.frozen


def uv_projects(text: str) -> list[UvProject]:
    found = []
    for match in _UV_PROJECT.finditer(text):
        options = f"{match.group(1)} {match.group(3)}"
        directory = re.search(r"--(?:project|directory)" + _OPTION_VALUE, options)
        found.append(
            UvProject(
                command=match.group(2),
                directory=directory.group(1) if directory else None,
                locked=bool(re.search(r"(?<![\w-])--locked\b", options)),
                frozen=bool(re.search(r"(?<![\w-])--frozen\b", options)),
            )
        )
    return found
