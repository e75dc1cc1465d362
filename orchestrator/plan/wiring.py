"""Planning a container's wiring: a resolved profile and facts become frozen data.

Pure, like build planning: nothing here reads a file, calls a process or asks the engine,
so every decision is unit-tested and shown by ``--dry-run`` and `orchestrate env` exactly
as it will be done.
The decisions are the builds' (``decisions``: the mode, one index and nothing else, the CA
bundle, the user, the ssh-agent, the secrets); what is a container's own is how it gets
them: mounts instead of BuildKit secrets, the proxy's network joined and the proxy reached
by its container name (RUN steps cannot, moby/buildkit#978), a cache volume in the fallback.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from orchestrator.errors import BadInput
from orchestrator.facts.model import RunFacts
from orchestrator.plan.containers import (
    CACHE_TARGET,
    RUN_LABEL,
    SECRETS_DIR,
    SSH_TARGET,
    CacheVolume,
    Mount,
    RunMode,
    RunOptions,
    Secret,
    Wiring,
)
from orchestrator.plan.decisions import (
    CA_VARIABLES,
    ca_bundle,
    ca_variables,
    check_secrets,
    choose_index,
    choose_mode,
    choose_user,
    container_fallback_network,
    container_proxy,
    ssh_socket,
)
from orchestrator.plan.model import PIP_LOCK_TARGET, PIP_LOCK_VARIABLE, PROFILE_LABEL, Decision
from orchestrator.profiles import ResolvedProfile
from orchestrator.proxy.spec import CA_TARGET, OWNER, OWNER_LABEL
from orchestrator.urls import redact

# Before 25.3, pip moves a wheel it built into its cache with a copy when the temporary
# directory is on another file system (pypa/pip#13540), as a volume always is; 23.3 also
# split cache entries non-atomically (pypa/pip#12361). Such pips take the cache's lock.
PIP_SAFE_VERSION = "25.3"


@dataclass
class _Draft:
    """The wiring while it is being planned."""

    resolved: ResolvedProfile
    facts: RunFacts
    options: RunOptions
    image: str | None
    mode: RunMode = "off"
    decisions: list[Decision] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    mounts: list[Mount] = field(default_factory=list)
    network: str | None = None
    index_url: str | None = None
    user: tuple[int, int] | None = None
    cache: CacheVolume | None = None

    def decide(self, topic: str, choice: str, reason: str) -> None:
        self.decisions.append(Decision(topic, redact(choice), redact(reason)))


def plan_wiring(
    resolved: ResolvedProfile, facts: RunFacts, options: RunOptions, image: str | None = None
) -> Wiring:
    """What any container of this profile gets: `orchestrate env` prints exactly this."""
    draft = _Draft(resolved, facts, options, image)
    for step in (_mode, _index, _ca, _user, _ssh, _cache):
        step(draft)
    secrets = _secrets(draft)
    return Wiring(
        profile=resolved.name,
        mode=draft.mode,
        decisions=tuple(draft.decisions),
        network=draft.network,
        index_url=draft.index_url,
        env=dict(draft.env),
        mounts=tuple(draft.mounts),
        user=f"{draft.user[0]}:{draft.user[1]}" if draft.user else None,
        secrets=secrets,
        cache=draft.cache,
        labels={OWNER_LABEL: OWNER, PROFILE_LABEL: resolved.name, RUN_LABEL: resolved.name},
    )


def docker_args(wiring: Wiring, *, by_name: frozenset[str] = frozenset()) -> list[str]:
    """The wiring as `docker run` options (secrets excepted: each caller has its own way).

    Variables in ``by_name`` are passed as ``--env NAME``: docker takes the value from its
    own environment, so it is not in the command line that `ps` shows every local user.
    """
    args: list[str] = []
    if wiring.network:
        args += ["--network", wiring.network]
    if wiring.user:
        args += ["--user", wiring.user]
    for key, value in wiring.env.items():
        args += ["--env", key if key in by_name else f"{key}={value}"]
    for mount in wiring.mounts:
        args += ["--mount", mount.option()]
    return args


# --- the mode, the network and the index ------------------------------------------------------


def _mode(draft: _Draft) -> None:
    draft.mode = choose_mode(
        draft,
        draft.resolved,
        draft.facts.host.proxy,
        no_proxy=draft.options.no_proxy,
        fallback="cache-volume",
        keeps="a named volume keeps pip's and uv's caches between runs",
    )


def _index(draft: _Draft) -> None:
    settings = draft.resolved.profile.proxy
    if draft.mode == "off":
        draft.decide("network", "engine default", "the proxy is off")
        return
    url = None
    if draft.mode in ("proxy", "offline"):
        draft.network, url = container_proxy(draft, settings)
    else:
        draft.network = container_fallback_network(draft, settings, draft.facts.network_exists)
    draft.index_url, env = choose_index(draft, settings, draft.mode, url)
    if env and settings.credentials and draft.index_url in (settings.url, settings.index):
        raise BadInput(
            f"{draft.resolved.sources[0]}: field 'proxy.credentials': a container's "
            "environment shows them to `docker inspect`; they reach builds only"
        )
    if env.pop("UV_DEFAULT_INDEX", None) is not None:
        draft.decide("uv", "its own index", UV_LEFT_AS_WRITTEN)
    draft.env.update(env)


# uv takes UV_DEFAULT_INDEX as the project's index: `uv run` and `uv sync` then find a
# uv.lock made against another index out of date and write it again, naming this one
# (seen: a bind-mounted project's uv.lock rewritten, 158 kB to 100 kB). A build protects the
# lock with a copy; a container has the user's own files, so uv is left as written.
UV_LEFT_AS_WRITTEN = (
    "not pointed at the proxy: uv run and uv sync would rewrite a mounted project's "
    "uv.lock for it; builds use a copy of the lock instead"
)


# --- what the container gets ---------------------------------------------------------------


def _elsewhere(draft: _Draft) -> bool:
    """The engine was seen not to have this machine's files (``facts.files_shared``): no
    path of this machine may be handed to it as a bind source (it would find nothing, or
    make an empty directory in its place)."""
    return draft.facts.files_shared is False


def _refuse(draft: _Draft, field: str, what: str) -> BadInput:
    return BadInput(
        f"{draft.resolved.sources[0]}: field '{field}': the engine is elsewhere and cannot "
        f"see {what} here: {ELSEWHERE_HINT[field]}"
    )


IMAGE_USER_STANDS = (
    "the profile names no user, so the image's USER (or a compose service's own user:) "
    "stands, as with plain docker; user: host runs as you"
)

ELSEWHERE_HINT = {
    "ssh": "set ssh: false for runs (builds forward it)",
    "secrets": "leave them out of runs (builds pass them)",
    "ca_bundle": "set ca_bundle: off for runs",
}


def _ca(draft: _Draft) -> None:
    profile = draft.resolved.profile
    if _elsewhere(draft) and profile.ca_bundle_path(draft.facts.host.host_ca_bundle):
        if profile.ca_bundle != "auto":
            raise _refuse(draft, "ca_bundle", "this file")
        draft.decide(
            "CA bundle",
            "none",
            "the engine is elsewhere: this machine's bundle is not there for its "
            "containers, which keep their image's own",
        )
        return
    how = f"mounted read-only at {CA_TARGET}, named by {', '.join(CA_VARIABLES)}"
    path = ca_bundle(draft, profile, draft.facts.host, how)
    if path is None:
        return
    draft.mounts.append(Mount("bind", str(path), CA_TARGET))
    draft.env.update(ca_variables(CA_TARGET))


def _user(draft: _Draft) -> None:
    """The builds' rule (``choose_user``), as the container's uid:gid, when the profile
    names a user: otherwise the image's USER stands, as under plain `docker run` (an image
    whose USER is root may need to write where another uid cannot, such as uv's cache)."""
    if "user" not in draft.resolved.profile.model_fields_set:
        draft.decide("user", "the image's", IMAGE_USER_STANDS)
        return
    chosen = choose_user(draft.resolved.profile, draft.facts.host)
    if chosen is None:
        draft.decide("user", "the image's", "the profile sets user: off")
        return
    user, reason = chosen
    draft.user = (user.uid, user.gid)
    draft.decide("user", f"{user.uid}:{user.gid}", reason)


def _ssh(draft: _Draft) -> None:
    sock = ssh_socket(draft.resolved, draft.facts.host)
    if sock is None:
        return
    if _elsewhere(draft):
        raise _refuse(draft, "ssh", "the ssh-agent")
    draft.mounts.append(Mount("bind", sock, SSH_TARGET, read_only=False))
    draft.env["SSH_AUTH_SOCK"] = SSH_TARGET
    reason = "the profile forwards the ssh-agent; keys stay on the host"
    user = draft.user
    if user is not None and user[0] not in (0, draft.facts.host.uid):
        reason += (
            f"; the socket belongs to uid {draft.facts.host.uid}, so uid {user[0]} may be refused"
        )
    draft.decide("ssh", f"{sock} at {SSH_TARGET}", reason)


def _cache(draft: _Draft) -> None:
    """The fallback's named volume: pip's and uv's caches, kept between runs."""
    if draft.mode != "cache-volume":
        return
    if _elsewhere(draft):
        draft.decide(
            "cache volume",
            "none",
            "the engine is elsewhere: the lock that keeps pips before "
            f"{PIP_SAFE_VERSION} from corrupting a shared cache is a file of this machine",
        )
        return
    owner = draft.user or _image_owner(draft)
    if owner is None:
        return
    uid, gid = owner
    profile = draft.resolved.profile
    name = f"{profile.cache_namespace}-run-{uid}"
    draft.cache = CacheVolume(name=name, uid=uid, gid=gid, image=draft.image)
    draft.mounts.append(Mount("volume", name, CACHE_TARGET, read_only=False))
    draft.env.update(
        {
            "PIP_CACHE_DIR": f"{CACHE_TARGET}/pip",
            "UV_CACHE_DIR": f"{CACHE_TARGET}/uv",
            "UV_LINK_MODE": "copy",  # the cache is on another file system than the venv
        }
    )
    draft.decide(
        "cache volume",
        f"{name} at {CACHE_TARGET}",
        f"pip's and uv's caches; created owned by {uid}:{gid} (a one-off root container "
        "of the image chowns it), shared by every run of that uid",
    )
    _pip_lock(draft)


def _pip_lock(draft: _Draft) -> None:
    """Concurrent runs share the cache: uv locks it itself, an older pip is made to."""
    draft.mounts.append(Mount("bind", str(draft.facts.pip_lock_dir), PIP_LOCK_TARGET))
    draft.env[PIP_LOCK_VARIABLE] = f"{CACHE_TARGET}/pip.lock"
    image = draft.facts.image
    theirs = image.env.get("PYTHONPATH", "") if image is not None else ""
    draft.env["PYTHONPATH"] = f"{PIP_LOCK_TARGET}:{theirs}" if theirs else PIP_LOCK_TARGET
    reason = (
        f"pip before {PIP_SAFE_VERSION} can corrupt a cache shared with other processes "
        "(pypa/pip#13540, #12361): each such pip holds an exclusive lock on the cache for "
        "its whole run, as builds' locked cache mounts do; newer pip and uv run unlocked"
    )
    if image is None or not image.present:
        reason += "; the image is not here to read its PYTHONPATH, so it is set, not extended"
    draft.decide("pip cache lock", f"{PIP_LOCK_TARGET}/sitecustomize.py", reason)


def _image_owner(draft: _Draft) -> tuple[int, int] | None:
    """With user: off, the volume must belong to the image's USER, if that can be told."""
    image = draft.facts.image
    spec = image.user if image is not None else None
    name, _, group = (spec or "").partition(":")
    if spec is not None and name in ("", "root", "0"):
        return 0, 0
    if name.isdigit():
        return int(name), int(group) if group.isdigit() else int(name)
    draft.decide(
        "cache volume",
        "none",
        f"cannot tell the uid of the image's USER {spec or '(unknown)'}; give the profile "
        "a user: setting",
    )
    return None


def _secrets(draft: _Draft) -> tuple[Secret, ...]:
    check_secrets(draft.resolved, draft.facts.host)
    if draft.resolved.profile.secrets and _elsewhere(draft):
        raise _refuse(draft, "secrets", "these files")
    found = [
        Secret(key, f"{SECRETS_DIR}/{key}", file=secret.file, variable=secret.env)
        for key, secret in draft.resolved.profile.secrets.items()
    ]
    if found:
        draft.decide(
            "secrets",
            ", ".join(s.target for s in found),
            "read-only files, never variables (docker inspect shows those)",
        )
    return tuple(found)
