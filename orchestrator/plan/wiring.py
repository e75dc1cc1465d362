"""Planning a container's wiring: a resolved profile and facts become frozen data.

Pure, like build planning: nothing here reads a file, calls a process or asks the engine,
so every decision is unit-tested and shown by ``--dry-run`` and `orchestrate env` exactly
as it will be done.
The rules are the builds' where a container allows the same thing (one index and nothing
else, the CA bundle, the build user, the ssh-agent, secrets as files), and differ where a
container can do better than a RUN step: it joins the proxy's network and reaches the
proxy by its container name (RUN steps cannot, moby/buildkit#978).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from orchestrator.errors import BadInput, ProxyUnavailable
from orchestrator.facts.model import RunFacts
from orchestrator.plan import modes
from orchestrator.plan.containers import (
    CA_TARGET,
    CACHE_TARGET,
    PIP_LOCK_TARGET,
    PIP_LOCK_VARIABLE,
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
from orchestrator.plan.handover import FALLBACK_UID
from orchestrator.plan.model import PROFILE_LABEL, Decision
from orchestrator.plan.settings import installer_settings
from orchestrator.profiles import BuildUser, ResolvedProfile
from orchestrator.proxy.spec import CONTAINER_PORT, OWNER, OWNER_LABEL
from orchestrator.urls import is_loopback, offline_url, redact

CA_VARIABLES = ("PIP_CERT", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")
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
    settings = draft.resolved.profile.proxy
    proxy = draft.facts.host.proxy
    settled = modes.preset(draft.resolved, no_proxy=draft.options.no_proxy)
    if settled is not None:
        draft.mode = "off" if settled.off else "cache-volume"
        draft.decide("mode", draft.mode, settled.reason)
        return
    if proxy is not None and proxy.healthy:
        if proxy.offline and not settings.url:
            draft.mode = "offline"
            draft.decide(
                "mode",
                "offline",
                f"the upstream does not answer ({proxy.offline}); the proxy serves what it "
                "has cached and asks the upstream nothing",
            )
        else:
            draft.mode = "proxy"
            draft.decide("mode", "proxy", f"the proxy serves: {proxy.reason}")
        return
    why = proxy.reason if proxy is not None else "the proxy was not checked"
    if settings.mode == "require":
        raise ProxyUnavailable(f"profile '{draft.resolved.name}' requires the proxy: {why}")
    draft.mode = "cache-volume"
    draft.decide(
        "mode",
        "cache-volume",
        f"the proxy cannot serve ({why}); a named volume keeps pip's and uv's caches between runs",
    )


def _index(draft: _Draft) -> None:
    settings = draft.resolved.profile.proxy
    if draft.mode == "off":
        draft.decide("network", "engine default", "the proxy is off")
        return
    if draft.mode in ("proxy", "offline"):
        url = _proxy_url(draft)
        if draft.mode == "offline":
            url = offline_url(url)
        draft.index_url = url
        draft.env.update(installer_settings(url, proxy=True))
        draft.decide(
            "package index",
            url,
            "pip and uv use only the proxy: pip's config files are ignored so no "
            "extra-index-url can bypass it (pip gives indexes no priority)",
        )
        return
    _fallback_network(draft)
    draft.index_url = settings.index
    if settings.index_is_pypi:
        draft.decide(
            "package index", "installers' own", "the upstream is PyPI, the installers' default"
        )
        return
    draft.env.update(installer_settings(settings.index, proxy=False))
    draft.decide("package index", settings.index, "the proxy's upstream, reached directly")


def _proxy_url(draft: _Draft) -> str:
    """The proxy as a container reaches it: by name on its network, unlike a RUN step."""
    settings = draft.resolved.profile.proxy
    if settings.url:
        if is_loopback(settings.url):
            draft.network = "host"
            draft.decide(
                "network",
                "host",
                "the external proxy is on this machine's loopback, which "
                "only host networking reaches",
            )
        else:
            draft.decide("network", "engine default", "the external proxy is reached by address")
        return settings.url
    draft.network = settings.network
    draft.decide(
        "network",
        settings.network,
        f"the proxy's network, where its container name '{settings.name}' resolves "
        "(containers, unlike RUN steps, can join it)",
    )
    return f"http://{settings.name}:{CONTAINER_PORT}/index/"


def _fallback_network(draft: _Draft) -> None:
    settings = draft.resolved.profile.proxy
    if is_loopback(settings.index):
        draft.network = "host"
        draft.decide("network", "host", "the upstream index is on this machine's loopback")
    elif not settings.url and draft.facts.network_exists:
        draft.network = settings.network
        draft.decide(
            "network",
            settings.network,
            "the proxy's network, as in proxy mode, so the container reaches the same "
            "services whichever mode it runs in",
        )
    else:
        draft.decide("network", "engine default", "no proxy network to join")


# --- what the container gets ---------------------------------------------------------------


def _ca(draft: _Draft) -> None:
    path = draft.resolved.profile.ca_bundle_path(draft.facts.host.host_ca_bundle)
    if path is None:
        draft.decide("CA bundle", "none", "off, or no host bundle found")
        return
    draft.mounts.append(Mount("bind", str(path), CA_TARGET))
    for name in CA_VARIABLES:
        draft.env[name] = CA_TARGET
    draft.decide(
        "CA bundle",
        str(path),
        f"mounted read-only at {CA_TARGET}, named by {', '.join(CA_VARIABLES)}",
    )


def _user(draft: _Draft) -> None:
    """The build's rule: the host user, 1000:1000 for root, or the profile's user."""
    profile = draft.resolved.profile
    host = draft.facts.host
    if profile.user == "off":
        draft.decide("user", "the image's", "the profile sets user: off")
        return
    if profile.user == "host":
        if host.uid == 0:
            user = BuildUser(name="builder", uid=FALLBACK_UID, gid=FALLBACK_UID)
            reason = (
                "the host user is root; as for builds, a root user would defeat a non-root image"
            )
        else:
            user = BuildUser(name=host.user_name, uid=host.uid, gid=host.gid)
            reason = "the invoking user, so files in mounted directories keep their owner"
    else:
        user, reason = profile.user, "given by the profile"
    uid, gid = profile.build_args.get("USER_ID", ""), profile.build_args.get("GROUP_ID", "")
    if uid.isdigit() or gid.isdigit():
        reason += "; the profile's USER_ID/GROUP_ID build args win, as in its builds"
    draft.user = (int(uid) if uid.isdigit() else user.uid, int(gid) if gid.isdigit() else user.gid)
    draft.decide("user", f"{draft.user[0]}:{draft.user[1]}", reason)


def _ssh(draft: _Draft) -> None:
    if not draft.resolved.profile.ssh:
        return
    sock = draft.facts.host.ssh_auth_sock
    if not sock:
        raise BadInput(
            f"{draft.resolved.sources[0]}: field 'ssh' is true but no ssh-agent "
            "socket was found: start one (eval $(ssh-agent); ssh-add) so "
            "SSH_AUTH_SOCK is set"
        )
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
    found = []
    for key, secret in draft.resolved.profile.secrets.items():
        if secret.env is not None and secret.env not in draft.facts.host.env_names:
            raise BadInput(
                f"{draft.resolved.sources[0]}: field 'secrets.{key}.env': "
                f"environment variable {secret.env} is not set"
            )
        found.append(Secret(key, f"{SECRETS_DIR}/{key}", file=secret.file, variable=secret.env))
    if found:
        draft.decide(
            "secrets",
            ", ".join(s.target for s in found),
            "read-only files, never variables (docker inspect shows those)",
        )
    return tuple(found)
