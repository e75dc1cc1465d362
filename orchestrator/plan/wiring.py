"""Wiring RUN steps: the settings, caches and lock copies each step gets, in every form.

Every RUN step is wired the same way in every mode: the same mounts, the same prefix, the
same network, so a switch between the proxy and the fallback keeps the layer cache. The
mode lives only in what the secrets hold. How settings reach a step depends on its form:

- shell form, and heredocs the shell reads: ``set -a; . /run/secrets/orchestrator-env``
  before the command (variables beat pip's and uv's config files and the Dockerfile's ENV);
- a heredoc script run by the shell: the same line, first in the script;
- exec form, a heredoc with its own ``#!``, or a non-POSIX SHELL: no shell to load
  variables, so pip.conf and uv.toml are mounted where pip and uv read system settings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import PurePosixPath

from orchestrator.dockerfile import RunStep, RunWiring, expand, render
from orchestrator.dockerfile.commands import disables_pip_cache, index_options, installers
from orchestrator.dockerfile.locks import LockUse, lock_uses
from orchestrator.dockerfile.parse import VARIABLE, mount_options
from orchestrator.plan import uvlock
from orchestrator.plan.draft import Draft
from orchestrator.plan.model import (
    CA_SECRET,
    ENV_SECRET,
    FRESH_ARG,
    PIP_CONF_SECRET,
    UV_TOML_SECRET,
)
from orchestrator.plan.settings import PIP_CONF_TARGET, UV_TOML_TARGET, pip_conf, uv_toml

CACHE_ROOT = "/var/cache/orchestrator"
LOAD_SETTINGS = f"set -a; . /run/secrets/{ENV_SECRET}; set +a"
INDEX_VARIABLES = frozenset(
    {"PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_CONFIG_FILE", "UV_DEFAULT_INDEX"}
    | {"UV_INDEX_URL", "UV_INDEX", "UV_EXTRA_INDEX_URL", "UV_CONFIG_FILE"}
)


@dataclass(frozen=True)
class Cache:
    """One installer's cache: where it is, what moves it, how parallel builds share it.

    pip before 23.3.1 could corrupt a shared cache (pypa/pip#12361), and Debian 12 ships
    23.0.1, so pip's is locked. uv locks its own cache (<cache>/.lock, entry locks), so
    its is shared: 4 parallel fallback builds whose uv steps overlap all succeed, every
    file intact, each fetched once (tests/integration/test_installers.py, uv 0.13.9),
    and no build waits for another's uv step as it would on a locked mount.
    Poetry keeps its virtualenvs in its cache directory by default, so only the
    ``artifacts`` directory under it (the downloaded files) is mounted, where poetry
    finds it: a venv on a cache mount would be missing from the image.
    """

    tool: str
    variable: str  # the variable that names the installer's cache directory
    leaf: str  # its directory under $XDG_CACHE_HOME (by default ~/.cache)
    sharing: str
    markers: tuple[str, ...] = field(default=())
    subdirectory: str = ""  # mount only this part of the cache directory
    movable: bool = True  # shell-form steps may point the variable at our mount


CACHES = (
    Cache("pip", "PIP_CACHE_DIR", "pip", "locked", ("pip",)),
    Cache("uv", "UV_CACHE_DIR", "uv", "shared", ("uv",)),
    Cache(
        "poetry",
        "POETRY_CACHE_DIR",
        "pypoetry",
        "locked",
        ("pypoetry", "poetry"),
        subdirectory="artifacts",
        movable=False,
    ),
)
CACHES_OF = {"pip": ("pip",), "pip-tools": ("pip",), "pipenv": ("pip",), "uv": ("uv",)}
CACHES_OF |= {"poetry": ("poetry",)}


def plan_rendering(draft: Draft) -> str | None:
    """Render a build-time copy when RUN steps need mounts or settings, else build as is."""
    after_from = _fresh(draft)
    if draft.wired:
        draft.config_files.update({"pip.conf": pip_conf(draft.env), "uv.toml": uv_toml(draft.env)})
        _report_env_lines(draft)
    locks = {use.line: use for use in lock_uses(draft.parsed)} if draft.wired else {}
    wiring = {}
    for run in draft.parsed.runs:
        wired = _wire_run(draft, run, locks.get(run.line))
        if wired is not None:
            wiring[run.line] = wired
    if not wiring and not after_from:
        draft.decide("Dockerfile", "used as is", "no RUN step needs wiring")
        return None
    draft.decide(
        "Dockerfile",
        f"rendered copy ({len(wiring)} RUN steps wired)",
        "the same text in every mode, so switching modes keeps the layer cache; "
        "the user's file is never modified",
    )
    return render(draft.parsed, wiring, after_from)


def _fresh(draft: Draft) -> list[str]:
    if not draft.options.fresh:
        return []
    draft.build_args[FRESH_ARG] = draft.facts.fresh_token
    draft.decide(
        "fresh",
        "every RUN step rebuilt",
        f"a new {FRESH_ARG} per build; --no-cache and --no-cache-filter would also empty "
        "the cache mounts (moby/buildkit#2447, and for uid/gid mounts since BuildKit 0.16)",
    )
    return [f"ARG {FRESH_ARG}"]


def _report_env_lines(draft: Draft) -> None:
    """ENV lines that point installers elsewhere, and what wiring does about each."""
    overridden = "PIP_INDEX_URL" in draft.env
    for line, name, value in draft.parsed.env_lines:
        if name not in INDEX_VARIABLES:
            continue
        reason = (
            "shell-form steps load orchestrator's settings after it, so those win; "
            "exec-form steps and #! heredocs keep it (variables beat config files)"
            if overridden
            else "this mode sets no index, so it applies as written"
        )
        draft.decide(f"ENV line {line}", f"{name}={value}", reason)


def _wire_run(draft: Draft, run: RunStep, lock: LockUse | None) -> RunWiring | None:
    flags = tuple(_fix_mount(flag, draft, run) for flag in run.flags)
    if not draft.wired:
        return RunWiring(flags=flags) if flags != run.flags else None
    if run.heredoc and not _heredocs_ok(draft, run):
        return None
    tools = installers(run.text)
    for option in index_options(run.text):
        draft.decide(
            f"RUN line {run.line}",
            f"left as written: {option}",
            "the command line names its own index, which beats every setting: "
            "this install bypasses the proxy",
        )
    if disables_pip_cache(run.text):
        draft.decide(
            f"RUN line {run.line}",
            "pip cache off",
            "--no-cache-dir (or PIP_NO_CACHE_DIR) stops pip from using any cache",
        )
    step = _Step(draft, run, list(flags))
    if step.loads_variables or tools:
        step.settings(tools)
    if tools:
        step.caches(tools)
    if lock is not None:
        step.lock(lock)
    return step.wiring()


def _heredocs_ok(draft: Draft, run: RunStep) -> bool:
    if draft.parsed.syntax or draft.facts.builder.heredocs:
        return True
    draft.decide(
        f"RUN line {run.line}",
        "left as written",
        "a heredoc needs dockerfile 1.4 (BuildKit 0.10); this builder's frontend has none, "
        "so the step fails with plain docker too",
    )
    return False


class _Step:
    """One RUN step being wired."""

    def __init__(self, draft: Draft, run: RunStep, flags: list[str]) -> None:
        self.draft = draft
        self.run = run
        self.flags = flags
        self.mounts: list[str] = []
        self.exports: list[str] = []
        self.unset: list[str] = []
        self.loads_variables = run.posix_shell and run.form in ("shell", "script")

    def settings(self, tools: frozenset[str]) -> None:
        draft = self.draft
        if self.loads_variables:
            self.mounts.append(f"--mount=type=secret,id={ENV_SECRET},mode=0444")
            draft.used_secrets.add(ENV_SECRET)
        else:
            self._config_files()
            if "poetry" in tools:
                draft.decide(
                    f"RUN line {self.run.line}",
                    "poetry left on its own index",
                    "poetry reads no system-wide configuration file, only variables and its "
                    "user's config.toml, so without a shell it cannot be pointed at the index "
                    "in use; its cache mount still serves",
                )
        if draft.ca_bundle is not None:
            self.mounts.append(f"--mount=type=secret,id={CA_SECRET},mode=0444")

    def _config_files(self) -> None:
        draft = self.draft
        for secret, target in (
            (PIP_CONF_SECRET, PIP_CONF_TARGET),
            (UV_TOML_SECRET, UV_TOML_TARGET),
        ):
            self.mounts.append(f"--mount=type=secret,id={secret},target={target},mode=0444")
            draft.used_secrets.add(secret)
        why = {
            "exec": "an exec-form step has no shell",
            "shebang": "a heredoc with its own #! interpreter has no shell",
        }.get(self.run.form, f"its SHELL {self.run.shell[0]} is not a POSIX shell")
        draft.decide(
            f"RUN line {self.run.line}",
            f"settings through {PIP_CONF_TARGET} and {UV_TOML_TARGET}",
            f"{why} to load variables into; an ENV or a pip.conf of the image's user "
            "would take precedence over these files",
        )

    def caches(self, tools: frozenset[str]) -> None:
        owner = _run_owner(self.draft, self.run)
        if owner is None:
            self.draft.decide(
                f"RUN line {self.run.line}",
                "cache owned by root",
                f"cannot tell the uid of USER {self.run.user}; give the profile a user: setting",
            )
            owner = (0, 0)
        own = _own_caches(self.flags, self.run)
        wanted = {name for tool in tools for name in CACHES_OF.get(tool, ())}
        for cache in CACHES:
            if cache.tool in wanted and cache.tool not in own:
                self._cache(cache, owner)

    def _cache(self, cache: Cache, owner: tuple[int, int]) -> None:
        uid, gid = owner
        if self.loads_variables and cache.movable:
            target = f"{CACHE_ROOT}/{cache.tool}"
            self.exports.append(f"{cache.variable}={target}")
        else:
            found = _default_cache_dir(self.draft, self.run, cache, uid)
            if found is None:
                return
            target = found
        namespace = self.draft.profile.cache_namespace
        self.mounts.append(
            f"--mount=type=cache,id={namespace}-{cache.tool}-{uid},target={target},"
            f"uid={uid},gid={gid},sharing={cache.sharing}"
        )

    def lock(self, use: LockUse) -> None:
        """Hand a uv project command a lock copy that agrees with the index in use."""
        draft = self.draft
        text = draft.facts.context_files.get(use.source or "")
        if not use.project.reads_lock_only or text is None:
            self._lock_left(use, text is None)
            return
        secret = f"orchestrator-uv-lock-{use.line}"
        content = _lock_content(draft, text)
        path = draft.facts.render_dir / f"uv-lock-{_digest(content)}.lock"
        draft.files[path] = content
        draft.secret(f"id={secret},src={path}")
        if use.bind_flag is not None and use.bind_flag in self.flags:
            self.flags.remove(use.bind_flag)
        self.mounts.append(f"--mount=type=secret,id={secret},target={use.image_path},mode=0444")
        draft.decide(
            f"RUN line {self.run.line}",
            f"uv.lock copy at {use.image_path}",
            f"uv {use.project.command} reads {use.source} through a copy whose registry and "
            "file URLs are those of the index in use (uv compares them as exact strings)",
        )

    def _lock_left(self, use: LockUse, unknown: bool) -> None:
        if self.loads_variables:
            self.unset.append("UV_DEFAULT_INDEX")
        else:
            self.mounts = [m for m in self.mounts if f"id={UV_TOML_SECRET}," not in m]
        why = (
            f"cannot tell which file of the build context is {use.image_path}"
            if unknown
            else f"uv {use.project.command} without --locked or --frozen may rewrite the lock"
        )
        self.draft.decide(
            f"RUN line {self.run.line}",
            "uv project left on its lock's index",
            f"{why}; uv downloads from the lock's own index, its cache mount still serves",
        )

    def wiring(self) -> RunWiring | None:
        prefix = ""
        script_prefix = ""
        if self.loads_variables:
            load = LOAD_SETTINGS
            if self.exports:
                load += f"; export {' '.join(self.exports)}"
            if self.unset:
                load += f"; unset {' '.join(self.unset)}"
            if self.run.form == "script":
                script_prefix = load
            else:
                prefix = load + "; "
        flags = tuple(self.flags)
        if flags == self.run.flags and not self.mounts and not prefix and not script_prefix:
            return None
        return RunWiring(
            flags=flags, mounts=tuple(self.mounts), prefix=prefix, script_prefix=script_prefix
        )


def _lock_content(draft: Draft, text: str) -> str:
    settings = draft.profile.proxy
    upstreams = {settings.index, "https://pypi.org/simple"}
    if draft.mode in ("proxy", "offline") and draft.index_url:
        return uvlock.rewrite(text, draft.index_url, upstreams=upstreams, files=True)
    fallback = draft.env.get("UV_DEFAULT_INDEX")
    if fallback:
        return uvlock.rewrite(text, fallback, upstreams=upstreams, files=False)
    return text


def _digest(text: str) -> str:
    import hashlib  # noqa: PLC0415

    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _own_caches(flags: list[str], run: RunStep) -> set[str]:
    """Installers whose cache the step already mounts itself: those mounts are kept.

    A mount counts when its path names the installer (``/root/.cache/uv``), is a whole
    ``.cache`` directory, or is where the stage's ENV puts the installer's cache.
    """
    found: set[str] = set()
    for flag in flags:
        options = mount_options(flag)
        if options.get("type") != "cache":
            continue
        target = options.get("target") or options.get("dst") or options.get("destination") or ""
        parts = PurePosixPath(target).parts
        if parts and parts[-1] == ".cache":
            found |= {cache.tool for cache in CACHES}
        found |= {c.tool for c in CACHES if any(marker in parts for marker in c.markers)}
        found |= {
            c.tool
            for c in CACHES
            if target and _same_dir(run.env.get(c.variable, ""), target, run.workdir)
        }
    return found


def _same_dir(path: str, target: str, workdir: str) -> bool:
    if not path:
        return False
    return PurePosixPath(workdir, path) == PurePosixPath(workdir, target)


def _default_cache_dir(draft: Draft, run: RunStep, cache: Cache, uid: int) -> str | None:
    """Where the installer keeps its cache in this step when nothing moves it: the
    stage's ENV first, then $XDG_CACHE_HOME, then the user's home."""
    base = run.env.get(cache.variable)
    if base is None:
        xdg = run.env.get("XDG_CACHE_HOME")
        if xdg:
            base = f"{xdg}/{cache.leaf}"
        else:
            home = _home(draft, run, uid, cache.tool)
            if home is None:
                return None
            base = f"{home}/.cache/{cache.leaf}"
    path = PurePosixPath(run.workdir, base)
    return str(path / cache.subdirectory if cache.subdirectory else path)


def _home(draft: Draft, run: RunStep, uid: int, tool: str) -> str | None:
    """The home directory of the step's user, where installers keep their caches."""
    if run.env.get("HOME"):
        return run.env["HOME"]
    if uid == 0:
        return "/root"
    user = draft.build_user
    if user is not None and uid == user.uid:
        return f"/home/{user.name}"
    draft.decide(
        f"RUN line {run.line}",
        f"no {tool} cache mount",
        f"cannot tell the home directory of USER {run.user}, where {tool} keeps its cache",
    )
    return None


# --- the user's own mounts ------------------------------------------------------------------

_OWNED_MOUNTS = ("ssh", "secret", "cache")


def _fix_mount(flag: str, draft: Draft, run: RunStep) -> str:
    """Make a user's own --mount work as written for a non-root RUN.

    Where the frontend does not expand variables in mount options (dockerfile before 1.3,
    as built into Docker 20.10), they are replaced by their literal values: ``uid=${ID}``
    does not parse there and a variable target silently stops caching (moby/buildkit#1173).
    ssh, secret and cache mounts get the RUN user's uid and gid, without which that user
    cannot use them (moby/moby#47415).
    """
    if not flag.startswith("--mount="):
        return flag
    fixed = _literal_mount(flag, draft, run)
    options = mount_options(fixed)
    if options.get("type", "bind") not in _OWNED_MOUNTS:
        return fixed
    owner = _run_owner(draft, run)
    if owner is None or owner == (0, 0):
        return fixed
    missing = [
        f"{key}={value}"
        for key, value in zip(("uid", "gid"), owner, strict=True)
        if key not in options
    ]
    return ",".join([fixed, *missing]) if missing else fixed


def _literal_mount(flag: str, draft: Draft, run: RunStep) -> str:
    if "$" not in flag or draft.facts.builder.mount_variables:
        return flag
    variables = _variables(draft)
    names = {m.group(1) or m.group(3) for m in VARIABLE.finditer(flag)}
    unknown = sorted(names - set(variables))
    if unknown:
        draft.decide(
            f"RUN line {run.line}",
            "mount left as written",
            f"no value known for {', '.join(unknown)}; this frontend will not expand it",
        )
        return flag
    draft.decide(
        f"RUN line {run.line}",
        "mount variables made literal",
        "this builder's frontend does not expand variables in --mount options "
        "(dockerfile 1.3 does)",
    )
    return expand(flag, variables)


def _variables(draft: Draft) -> dict[str, str]:
    return {**draft.parsed.arg_defaults, **draft.build_args, **draft.profile.build_args}


def _run_owner(draft: Draft, run: RunStep) -> tuple[int, int] | None:
    """The uid and gid a RUN step runs as, when the Dockerfile and build args tell."""
    name, _, group = expand(run.user, _variables(draft)).partition(":")
    user = draft.build_user
    if name in ("", "root", "0"):
        return 0, 0
    if user is not None and name in (user.name, str(user.uid)):
        return user.uid, user.gid
    if name.isdigit():
        return int(name), int(group) if group.isdigit() else int(name)
    return None
