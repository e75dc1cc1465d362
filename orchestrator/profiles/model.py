"""What a build profile may say: pydantic models, validated once the layers are merged.

The models are pure: a setting that names a host file (a CA bundle) is resolved against
facts gathered before planning, never by looking at the disk here. What a single value
may be is ``values``'s.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from orchestrator import paths
from orchestrator.profiles.values import (
    PROFILE_NAME,
    ArgValue,
    BindAddress,
    ByteSize,
    DockerName,
    Flag,
    HostPath,
    HttpUrl,
    ImageRef,
    ImageTag,
    NetworkName,
    PathSetting,
    ProjectName,
    Switch,
    Text,
)

DEFAULT_CA_BUNDLE = paths.HOST_CA_BUNDLE
PYPI_INDEXES = ("https://pypi.org/simple", "https://pypi.python.org/simple")


def mode_shorthand(value: object) -> object:
    """Allow ``proxy: off`` (YAML reads it as False) and ``proxy: require``."""
    if value is False:
        return {"mode": "off"}
    if isinstance(value, str):
        return {"mode": value}
    return value


class Secret(BaseModel):
    """A BuildKit secret, read from a file or an environment variable, never a build arg."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    file: HostPath | None = Field(
        None, description="File holding the secret, relative to the profile."
    )
    env: Text | None = Field(None, description="Environment variable holding the secret.")

    @model_validator(mode="after")
    def _one_source(self) -> Secret:
        if (self.file is None) == (self.env is None):
            raise ValueError("give exactly one of 'file' or 'env'")
        return self

    @property
    def source(self) -> str:
        """Where it is kept, as one word: ``env:NAME`` or ``file:PATH``."""
        return f"env:{self.env}" if self.env is not None else f"file:{self.file}"


class ProxySettings(BaseModel):
    """The caching PyPI proxy (proxpi) that builds get their packages through."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: Annotated[Literal["auto", "require", "off"], Switch] = Field(
        "auto",
        description="auto: use the proxy when it can serve, else fall back to cache mounts; "
        "require: fail when it cannot; off: never use it.",
    )
    url: HttpUrl | None = Field(
        None,
        description="An external shared proxy's index URL, used as given; "
        "no container is managed then.",
    )
    credentials: Secret | None = Field(
        None,
        description="user:password (a token: as its index names the user, such as "
        "aws:TOKEN) for url, or else for index, from a file or a variable. Builds get them "
        "as BuildKit secrets only, never in a plan, a log or a layer; a managed proxy "
        "passes them to proxpi.",
    )
    name: DockerName = Field(
        "orchestrator-proxpi", description="Container name of the managed proxy."
    )
    network: NetworkName = Field(
        "orchestrator",
        description="User-defined Docker network the proxy joins (created if missing).",
    )
    bind: BindAddress = Field(
        "127.0.0.1",
        description="Host address the port is published on. Anything but loopback shares "
        "the cache with the network.",
    )
    port: int = Field(5000, ge=1, le=65535, description="Host port published for the proxy.")
    bridge: Flag = Field(
        False,
        description="Also publish the port on the default bridge's gateway address (such as "
        "172.17.0.1): reachable from containers on this host, not from other machines. "
        "`orchestrate bake` needs it, since bake cannot use host networking before buildx 0.17.",
    )
    image: ImageRef = Field(
        "epicwink/proxpi:1.4.0a1",
        description="proxpi image to run; when absent and not pullable, orchestrator builds "
        "its own. 1.4.0a1 is the first proxpi to pass PEP 700 upload times on, which "
        "uv's `--exclude-newer` and pip's `--uploaded-prior-to` need.",
    )
    front_image: ImageRef = Field(
        "nginx:1.27-alpine",
        description="nginx image for the proxy's front (stale-serving cache, one download per "
        "file); when absent and not pullable, orchestrator builds its own on base_image.",
    )
    base_image: ImageRef = Field(
        "python:3.12-slim", description="Base image for building the proxy image locally."
    )
    cache_volume: DockerName = Field(
        "orchestrator-proxpi-cache", description="Named volume holding the package cache."
    )
    cache_size: ByteSize = Field(
        20 * 1024**3,
        description="Package files the proxy keeps (least recently used go first): bytes, or "
        "a size such as 500M or 20G (binary units, as `orchestrate proxy prune --max-size` "
        "takes).",
    )
    index: HttpUrl = Field(
        "https://pypi.org/simple/", description="Upstream index the proxy mirrors."
    )
    index_ttl: int = Field(1800, ge=0, description="Seconds an upstream index page is cached.")
    extra_indexes: tuple[HttpUrl, ...] = Field(
        (),
        description="Further upstream indexes (private ones belong here, never as a pip "
        "extra-index-url inside builds).",
    )
    extra_index_ttl: int = Field(180, ge=0, description="Seconds extra indexes' pages are cached.")
    download_timeout: float = Field(
        900,
        gt=0,
        description="Seconds a client waits for a cold file another client is fetching (and, "
        "where the upstream needs credentials, before proxpi redirects it upstream); high, "
        "so builds never need the upstream themselves.",
    )
    ca_bundle: PathSetting = Field(
        "auto",
        description="CA bundle the proxy trusts for upstream HTTPS: auto (the host's bundle, "
        "when present), off, or a path.",
    )
    health_project: ProjectName = Field(
        "pip", description="Project whose index page the readiness check fetches."
    )
    startup_timeout: float = Field(
        30, gt=0, description="Seconds to wait for a started proxy to become ready."
    )

    @property
    def host_url(self) -> str:
        return self.url or f"http://{_url_host(self.bind)}:{self.port}/index/"

    @property
    def index_is_pypi(self) -> bool:
        """The upstream is PyPI itself, which every installer uses when told nothing."""
        return self.index.rstrip("/") in PYPI_INDEXES

    def ca_bundle_path(self, host_bundle: Path | None) -> Path | None:
        return resolve_ca_bundle(self.ca_bundle, host_bundle)


def resolve_ca_bundle(setting: str | Path, host_bundle: Path | None) -> Path | None:
    """``auto`` means the host's bundle when the host has one (a fact, found before)."""
    if setting == "off":
        return None
    if setting == "auto":
        return host_bundle
    return Path(setting)


def _url_host(bind: str) -> str:
    """A wildcard bind is reached through loopback; an IPv6 literal needs brackets."""
    if bind in ("0.0.0.0", ""):  # noqa: S104 - reading, not binding
        return "127.0.0.1"
    if bind == "::":
        return "[::1]"
    return f"[{bind}]" if ":" in bind else bind


class BuildUser(BaseModel):
    """Who the image's build user is: USER_NAME, USER_ID and GROUP_ID build args."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Text = Field(description="USER_NAME build arg.")
    uid: int = Field(ge=0, description="USER_ID build arg.")
    gid: int = Field(ge=0, description="GROUP_ID build arg.")


def _secret_id(value: str) -> str:
    """Ids go into `--secret id=...,src=...`: a comma or '=' would inject options."""
    if not PROFILE_NAME.fullmatch(value):
        raise ValueError("use letters, digits, '.', '_' and '-' only")
    if value.startswith("orchestrator-"):
        raise ValueError("ids starting with 'orchestrator-' are reserved")
    return value


SecretId = Annotated[str, AfterValidator(_secret_id)]


class Profile(BaseModel):
    """One build, described once and reused by `orchestrate build` and `orchestrate bake`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    description: Text = Field("", description="One line shown by `orchestrate profiles list`.")
    extends: str | None = Field(
        None,
        description="Name of a profile in the same directory whose settings this one inherits.",
    )
    context: HostPath = Field(description="Build context directory, relative to this profile file.")
    dockerfile: Text = Field(
        "Dockerfile", description="Dockerfile path, relative to the context (as in bake)."
    )
    target: Text | None = Field(None, description="Build stage to stop at (`--target`).")
    tags: tuple[ImageTag, ...] = Field(
        (),
        description="Image tags (`--tag`): [HOST[:PORT]/]NAME[:TAG][@DIGEST], NAME in lowercase.",
    )
    build_args: dict[Text, ArgValue] = Field(
        default_factory=dict, description="Build arguments (`--build-arg`); merged with parents'."
    )
    labels: dict[Text, ArgValue] = Field(
        default_factory=dict, description="Image labels (`--label`); merged with parents'."
    )
    platforms: tuple[Text, ...] = Field(
        (), description="Target platforms (`--platform`); empty means the engine's own."
    )
    builder: Text | None = Field(
        None, description="buildx builder to use; unset means the current one."
    )
    progress: Literal["auto", "plain", "tty", "quiet"] = Field(
        "auto", description="How BuildKit reports progress."
    )
    user: Annotated[Literal["host", "off"] | BuildUser, Switch] = Field(
        "host",
        description="USER_NAME/USER_ID/GROUP_ID build args: host (the invoking user; "
        "1000 when that is root), off, or {name, uid, gid}. Passed only to Dockerfiles "
        "that declare them. Runs take it as --user only when the profile sets it.",
    )
    ssh: Flag = Field(False, description="Forward the ssh-agent (`--ssh default=$SSH_AUTH_SOCK`).")
    ca_bundle: PathSetting = Field(
        "auto",
        description="CA bundle given to RUN steps as a secret: auto (the host's, when "
        "present), off, or a path relative to the profile.",
    )
    secrets: dict[SecretId, Secret] = Field(
        default_factory=dict, description="BuildKit secrets by id: {file: PATH} or {env: VAR}."
    )
    cache_namespace: str = Field(
        "orchestrator",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
        description="Prefix of the fallback's cache mount ids ({namespace}-pip-{uid}); "
        "profiles that share it share one package cache.",
    )
    network: Literal["auto", "host", "default"] = Field(
        "auto",
        description="Build network: auto (host when the proxy or index is on this "
        "machine's loopback), host, or the engine's default bridge.",
    )
    proxy: Annotated[ProxySettings, BeforeValidator(mode_shorthand)] = Field(
        default_factory=ProxySettings,
        description="The caching PyPI proxy; `proxy: off` or `proxy: require` is a shorthand "
        "for its mode.",
    )

    @property
    def dockerfile_path(self) -> Path:
        return self.context / self.dockerfile

    def ca_bundle_path(self, host_bundle: Path | None) -> Path | None:
        return resolve_ca_bundle(self.ca_bundle, host_bundle)
