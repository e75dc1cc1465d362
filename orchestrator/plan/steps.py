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

from orchestrator.dockerfile import RunStep, RunWiring, render
from orchestrator.dockerfile.commands import compiles, disabled_caches, index_options, installers
from orchestrator.dockerfile.locks import LockUse, lock_uses
from orchestrator.dockerfile.requirements import index_lines, requirement_uses
from orchestrator.plan import uvlock
from orchestrator.plan.draft import Draft
from orchestrator.plan.installer_caches import (
    CACHES,
    CACHES_OF,
    Cache,
    default_cache_dir,
    own_caches,
)
from orchestrator.plan.model import (
    CA_SECRET,
    CACHE_ROOT,
    ENV_SECRET,
    FRESH_ARG,
    PIP_CONF_SECRET,
    PIP_LOCK_SECRET,
    PIP_LOCK_TARGET,
    PIP_LOCK_VARIABLE,
    UV_TOML_SECRET,
)
from orchestrator.plan.mounts import fix_mount, run_owner
from orchestrator.plan.settings import PIP_CONF_TARGET, UV_TOML_TARGET, pip_conf, uv_toml

LOAD_SETTINGS = f"set -a; . /run/secrets/{ENV_SECRET}; set +a"
PIP_VARIABLES = ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL")
UV_VARIABLES = ("UV_DEFAULT_INDEX", "UV_INDEX_URL", "UV_INDEX", "UV_EXTRA_INDEX_URL")
INDEX_VARIABLES = frozenset(
    {"PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_CONFIG_FILE", "UV_DEFAULT_INDEX"}
    | {"UV_INDEX_URL", "UV_INDEX", "UV_EXTRA_INDEX_URL", "UV_CONFIG_FILE"}
)


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
    flags = tuple(fix_mount(flag, draft, run) for flag in run.flags)
    if not draft.wired:
        return RunWiring(flags=flags) if flags != run.flags else None
    if run.heredoc and not _heredocs_ok(draft, run):
        return None
    tools = installers(run.text)
    for option in index_options(run.text):
        draft.bypass(
            run.line,
            f"left as written: {option}",
            "the command line names its own index, which beats every setting: "
            "this install bypasses the proxy",
            "the command names its own index",
        )
    _report_requirement_files(draft, run)
    for tool in disabled_caches(run.text):
        draft.decide(
            f"RUN line {run.line}",
            f"{tool} cache off",
            f"the command tells {tool} to use no cache (--no-cache-dir, --no-cache or "
            "PIP_NO_CACHE_DIR), so no cache mount can serve it",
        )
    step = _Step(draft, run, list(flags))
    if step.loads_variables or tools:
        step.settings(tools)
    if tools:
        step.caches(tools)
        step.installers_left(tools)
    if lock is not None:
        step.lock(lock)
    return step.wiring()


def _report_requirement_files(draft: Draft, run: RunStep) -> None:
    """Index options written inside the requirement files the step installs from (read
    as facts, from the build context): what each does to this step's route."""
    for use in requirement_uses(draft.parsed, run):
        text = draft.facts.context_files.get(use.source or "", "")  # read: a traced source
        for found in index_lines(text):
            where = f"{use.source}:{found.number} {found.option} {found.url}"
            if not found.replaces_index:
                short = f"{use.source} adds an index the installer also asks"
                draft.bypass(run.line, f"left as written: {where}", EXTRA_INDEX_IN_FILE, short)
            elif use.installer == "uv":
                draft.decide(f"RUN line {run.line}", f"index kept over {where}", UV_KEEPS_ITS_INDEX)
            else:
                short = f"pip takes {use.source}'s own --index-url"
                draft.bypass(run.line, f"left as written: {where}", PIP_TAKES_FILE_INDEX, short)


PIP_TAKES_FILE_INDEX = (
    "pip takes a requirement file's --index-url over PIP_INDEX_URL: this install asks that "
    "index, not the one this plan sets (drop the line, or pip-compile --no-emit-index-url)"
)
UV_KEEPS_ITS_INDEX = (
    "uv keeps UV_DEFAULT_INDEX, which this plan sets, over a requirement file's "
    "--index-url (astral-sh/uv#6407)"
)
EXTRA_INDEX_IN_FILE = (
    "the installer also asks this index itself, beside the one this plan sets (pip gives "
    "indexes no priority; uv prefers an extra index)"
)


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
            self._env_over_files(tools)
            for tool in sorted(tools & {"poetry", "pipenv"}):
                draft.bypass(
                    self.run.line,
                    f"{tool} left on its own index",
                    f"{tool} reads no system-wide configuration file, only variables, so "
                    "without a shell it cannot be pointed at the index in use; its cache "
                    "mount still serves",
                    f"{tool} without a shell to load the proxy's variables",
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

    def _env_over_files(self, tools: frozenset[str]) -> None:
        """An index variable in the step's environment (the Dockerfile's ENV or its base
        image's, such as an organisation's image naming its own index) beats the config
        files this step gets: its installer asks that index, not the proxy."""
        wanted = {"pip": PIP_VARIABLES, "pip-tools": PIP_VARIABLES, "uv": UV_VARIABLES}
        names = {name for tool in tools for name in wanted.get(tool, ())}
        kept = sorted(name for name in self.run.env if name in names)
        if kept:
            self.draft.bypass(
                self.run.line,
                f"left on ENV {', '.join(kept)}",
                "variables beat pip.conf and uv.toml, and this step has no shell to load "
                "the proxy's variables after them (the image's ENV counts: base images too)",
                f"the step's ENV {kept[0]} beats the proxy's config files",
            )

    def caches(self, tools: frozenset[str]) -> None:
        owner = run_owner(self.draft, self.run)
        known = owner is not None
        if owner is None:
            self.draft.decide(
                f"RUN line {self.run.line}",
                "cache owned by root",
                f"cannot tell the uid of USER {self.run.user}; give the profile a user: setting",
            )
            owner = (0, 0)
        own = own_caches(self.flags, self.run)
        wanted = {name for tool in tools for name in CACHES_OF.get(tool, ())}
        for cache in CACHES:
            if cache.tool in wanted and cache.tool not in own:
                self._cache(cache, owner, known=known)

    def _cache(self, cache: Cache, owner: tuple[int, int], *, known: bool) -> None:
        """``known``: whether ``owner`` is the step's user, or root for want of knowing it
        (then that user's home is not root's either)."""
        uid, gid = owner
        sharing = cache.sharing
        if self.loads_variables and cache.movable:
            target = f"{CACHE_ROOT}/{cache.tool}"
            self.exports.append(f"{cache.variable}={target}")
            if cache.tool == "pip":
                sharing = self._pip_lock(target)
        else:
            found = default_cache_dir(self.draft, self.run, cache, uid if known else None)
            if found is None:
                return
            target = found
        namespace = self.draft.profile.cache_namespace
        self.mounts.append(
            f"--mount=type=cache,id={namespace}-{cache.tool}-{uid},target={target},"
            f"uid={uid},gid={gid},sharing={sharing}"
        )

    def _pip_lock(self, target: str) -> str:
        """pip's cache mount is shared, and a pip older than 25.3 locks it itself (the
        sitecustomize of runs, handed over as a secret): BuildKit's ``sharing=locked``
        made every parallel build's pip step wait for the others', in every mode, for the
        whole step (issue 22). What a busy lock does is the mode's, in the settings."""
        draft = self.draft
        if PIP_LOCK_SECRET not in draft.used_secrets:
            draft.secret(f"id={PIP_LOCK_SECRET},src={draft.facts.pip_lock_file}")
            draft.used_secrets.add(PIP_LOCK_SECRET)
            draft.decide(
                "pip cache",
                "shared, locked by pip",
                "a pip older than 25.3 locks the shared cache mount for its run "
                "(pypa/pip#13540, #12361); newer pips and uv need no lock; through the proxy "
                "a pip that finds the cache busy runs without it instead of waiting",
            )
        self.mounts.append(
            f"--mount=type=secret,id={PIP_LOCK_SECRET},"
            f"target={PIP_LOCK_TARGET}/sitecustomize.py,mode=0444"
        )
        self.exports += [
            f"{PIP_LOCK_VARIABLE}={target}/orchestrator-pip.lock",
            f"PYTHONPATH={PIP_LOCK_TARGET}${{PYTHONPATH:+:$PYTHONPATH}}",
        ]
        return "shared"

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
        self.draft.bypass(
            self.run.line,
            "uv project left on its lock's index",
            f"{why}; uv downloads from the lock's own index, its cache mount still serves",
            f"uv {use.project.command}: {why}",
        )

    def installers_left(self, tools: frozenset[str]) -> None:
        """Installers that a variable cannot point at the proxy in this step."""
        if "poetry" in tools and self.loads_variables and not _mirror_plugin(self.draft):
            self.draft.bypass(
                self.run.line,
                "poetry on its own index",
                "poetry follows POETRY_PYPI_MIRROR_URL only through "
                f"{POETRY_MIRROR_PLUGIN}, which no step of this Dockerfile installs (a base "
                "image may have it): without it poetry asks PyPI, as with plain docker",
                f"poetry: no step installs {POETRY_MIRROR_PLUGIN}",
            )
        if compiles(self.run.text):
            self._leave_pip()

    def _leave_pip(self) -> None:
        """pip-compile writes the index it used into its output: the proxy's address (and
        credentials, if the index had them) would be in a file of the image, and a later
        step would ask a proxy that may be gone. Its step keeps pip's own index."""
        if self.loads_variables:
            self.unset += ["PIP_INDEX_URL", "PIP_TRUSTED_HOST", "PIP_CONFIG_FILE"]
        else:
            self.mounts = [m for m in self.mounts if f"id={PIP_CONF_SECRET}," not in m]
        self.draft.bypass(
            self.run.line,
            "pip left on its own index",
            "pip-compile writes the index it used into its output (--emit-index-url), "
            "which would put the proxy's address into the image; pip's cache mount still serves",
            "pip-compile writes its index into its output",
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


POETRY_MIRROR_PLUGIN = "poetry-plugin-pypi-mirror"


def _mirror_plugin(draft: Draft) -> bool:
    return any(POETRY_MIRROR_PLUGIN in run.text for run in draft.parsed.runs)


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
