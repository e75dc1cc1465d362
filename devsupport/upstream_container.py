"""Run the hermetic PyPI-like upstream (``upstream/server.py``) in a container (python-on-whales).

Typical use::

    with temporary_network() as network, Upstream(tree, network) as upstream:
        with ClientContainer(network) as client:
            client.sh(f"python3 -m pip download -d /tmp/d -i {upstream.url_inside_network} pkg")
        assert [r["path"] for r in upstream.file_downloads()] == ["/files/pkg-1.0-py3-none-any.whl"]

Every container and network made here is named ``orchestrator-test-...`` and labelled
``io.orchestrator.test=<role>``; nothing publishes a port.  ``stop()``/``remove`` are idempotent
and run from ``__exit__``, so a failing test leaves nothing behind.

Outages, for tests of what survives them (``Upstream.outage(kind)``):

- ``stopped``: the container is stopped, so nothing listens; on a network made by
  ``fixed_subnet_network`` it keeps its address across stop and start (``Upstream(ip=...)``),
  so a proxy configured with that address finds it again;
- ``hung``: the container is paused (``docker pause``): connections are accepted by the kernel
  and never answered, as by a hung server; requests queued meanwhile are answered and logged
  once it is unpaused;
- ``failing``: a ``FAULT`` file in the served tree makes the server answer 500 to everything
  (``server.fault_status``), and log each such request with ``"fault": true``.
"""

from __future__ import annotations

import ipaddress
import json
import os
import random
import stat
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self

from python_on_whales import docker
from python_on_whales.exceptions import DockerException, NoSuchContainer, NoSuchNetwork

from devsupport.upstream.server import FAULT_FILE, READY_MARKER

__all__ = [
    "ALIAS",
    "BASE_IMAGE_ENV",
    "CONTAINER_PORT",
    "DEFAULT_BASE_IMAGE",
    "HERMETIC_PIP_ENV",
    "IMAGE_TAG",
    "LABEL",
    "OUTAGES",
    "TEST_SUBNETS",
    "ClientContainer",
    "Outage",
    "ShellResult",
    "Upstream",
    "UpstreamError",
    "base_image",
    "build_upstream_image",
    "fixed_subnet_network",
    "json_lines",
    "temporary_network",
    "unique_name",
]

IMAGE_TAG = "orchestrator-test/upstream:latest"
DEFAULT_BASE_IMAGE = "orchestrator/base:bookworm"
BASE_IMAGE_ENV = "ORCHESTRATE_BASE_IMAGE"
LABEL = "io.orchestrator.test"
NAME_PREFIX = "orchestrator-test-"
ALIAS = "upstream"
CONTAINER_PORT = 8080
TREE_MOUNT = "/srv/index"
CONTEXT_DIR = Path(__file__).resolve().parent / "upstream"

HERMETIC_PIP_ENV: Mapping[str, str] = {
    "PIP_CONFIG_FILE": "/dev/null",
    "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    "PIP_NO_INPUT": "1",
    "PIP_PROGRESS_BAR": "off",
    "PIP_NO_PYTHON_VERSION_WARNING": "1",
    "PYTHONDONTWRITEBYTECODE": "1",
}
"""Environment for pip inside test containers: no config files, no self-update check (which
would reach the real PyPI), no prompts, plain output."""

# Test networks with a subnet of their own come from here: it collides neither with the stock
# engine's pools (172.17-31.x, 192.168.x) nor with the current engine's (10.213.0.0/24 and
# 10.214.0.0/16, scripts/engines), nor with the host's own addresses. The current engine's
# firewall rules admit it by name (scripts/engines `test_nets`; tests/unit/test_scripts.py).
TEST_SUBNETS = ipaddress.IPv4Network("10.231.0.0/16")
Outage = Literal["stopped", "hung", "failing"]
OUTAGES: tuple[Outage, ...] = ("stopped", "hung", "failing")

_built: dict[tuple[str, str], str] = {}


class UpstreamError(RuntimeError):
    """The upstream container could not be built, started or reached."""


def base_image() -> str:
    """Base image for the upstream and client containers (env ``ORCHESTRATE_BASE_IMAGE``)."""
    return os.environ.get(BASE_IMAGE_ENV, "").strip() or DEFAULT_BASE_IMAGE


def unique_name(role: str) -> str:
    """``orchestrator-test-<role>-<random>``: a fresh container/network name."""
    return f"{NAME_PREFIX}{role}-{uuid.uuid4().hex[:10]}"


def build_upstream_image(
    *, base: str | None = None, tag: str = IMAGE_TAG, force: bool = False
) -> str:
    """Build the upstream image from ``upstream/Dockerfile`` (once per process) and return its tag.

    Nothing is pulled: the base image must already be in the engine's image store.
    """
    base = base or base_image()
    key = (tag, base)
    if key in _built and not force:
        return _built[key]
    try:
        docker.build(
            CONTEXT_DIR,
            tags=[tag],
            build_args={"BASE_IMAGE": base},
            labels={LABEL: "upstream"},
            load=True,
            pull=False,
            progress=False,
        )
    except DockerException as error:
        raise UpstreamError(f"building {tag} FROM {base} failed: {error}") from error
    _built[key] = tag
    return tag


@contextmanager
def temporary_network(role: str = "net") -> Iterator[str]:
    """A fresh user-defined bridge network, removed on exit; yields its name."""
    name = unique_name(role)
    docker.network.create(name, labels={LABEL: role})
    try:
        yield name
    finally:
        with suppress(NoSuchNetwork):
            docker.network.remove(name)


@contextmanager
def fixed_subnet_network(role: str = "fixnet") -> Iterator[tuple[str, ipaddress.IPv4Network]]:
    """A fresh bridge network on a /24 of ``TEST_SUBNETS``, removed on exit.

    Its containers can be given fixed addresses, which a stopped container keeps (an address
    the engine picked may go to another container meanwhile). A /24 that a network of the
    engine holds (a leftover, another run) is skipped: the engine is asked which are taken,
    before and, if the create is refused, again after.
    """
    name = unique_name(role)
    candidates = list(TEST_SUBNETS.subnets(new_prefix=24))
    random.shuffle(candidates)
    for subnet in candidates[:8]:
        assert isinstance(subnet, ipaddress.IPv4Network)
        if any(subnet.overlaps(taken) for taken in _engine_subnets()):
            continue
        try:
            docker.network.create(
                name, subnet=str(subnet), gateway=str(subnet[1]), labels={LABEL: role}
            )
        except DockerException:
            if any(subnet.overlaps(taken) for taken in _engine_subnets()):
                continue  # taken meanwhile
            raise
        break
    else:
        raise UpstreamError(f"no free /24 in {TEST_SUBNETS} for a test network")
    try:
        yield name, subnet
    finally:
        with suppress(NoSuchNetwork):
            docker.network.remove(name)


def _engine_subnets() -> list[ipaddress.IPv4Network]:
    """The IPv4 subnets of every network the engine has. A network removed between the
    list and its inspection (another test worker's) holds none (seen on Docker 28.5)."""
    found = []
    for network in docker.network.list():
        try:
            configs = network.ipam.config or []
        except NoSuchNetwork:
            continue
        for config in configs:
            subnet = config.get("Subnet") if isinstance(config, dict) else None
            if subnet and ":" not in str(subnet):
                found.append(ipaddress.IPv4Network(str(subnet), strict=False))
    return found


def _make_world_readable(tree: Path) -> None:
    """The server runs as ``nobody``: give o+r to files and o+rx to directories."""
    paths = [tree, *tree.rglob("*")]
    for path in paths:
        if path.is_symlink():
            continue
        mode = path.stat().st_mode
        wanted = mode | stat.S_IROTH | (stat.S_IXOTH if path.is_dir() else 0)
        if wanted != mode:
            path.chmod(wanted)


def json_lines(text: str) -> Iterator[dict[str, Any]]:
    """The JSON objects among a log's lines (a JSON request log, structlog's JSON output)."""
    for raw in text.splitlines():
        line = raw.strip()
        if not line.startswith("{"):
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict):
            yield record


def _parse_requests(stdout: str) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    for record in json_lines(stdout):
        if "method" in record and "status" in record:
            records.append(record)
    return records


def _split_logs(container: str) -> tuple[str, str]:
    """(stdout, stderr) of a container, kept apart (the request log is stdout only)."""
    out: list[bytes] = []
    err: list[bytes] = []
    stream = docker.container.logs(container, stream=True)
    assert not isinstance(stream, str)
    for source, chunk in stream:
        (out if source == "stdout" else err).append(chunk)
    return b"".join(out).decode("utf-8", "replace"), b"".join(err).decode("utf-8", "replace")


class _Started:
    """A test container used as ``with X(...) as x:``: started on entry, removed on exit."""

    def start(self) -> Self:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class Upstream(_Started):
    """The upstream server in a container on ``network``, reachable there as ``http://upstream:8080``.

    ``tree`` is a PEP 503 tree (``devsupport.index.write_simple_index``), mounted read-only.
    ``delay_ms``/``rate_bps`` make it behave like a distant index (per-response latency and
    per-response bandwidth).  Request records are the server's JSON log lines::

        {"ts", "method", "path", "status", "bytes", "client", "user_agent", "duration_ms"}
    """

    def __init__(
        self,
        tree: Path | str,
        network: str,
        *,
        alias: str = ALIAS,
        name: str | None = None,
        base: str | None = None,
        image: str | None = None,
        delay_ms: int = 0,
        rate_bps: int = 0,
        ready_timeout: float = 30.0,
        ip: str | None = None,
    ) -> None:
        self.tree = Path(tree).resolve()
        self.network = network
        self.alias = alias
        self.name = name or unique_name("upstream")
        self.port = CONTAINER_PORT
        self._base = base
        self._image = image
        self._delay_ms = delay_ms
        self._rate_bps = rate_bps
        self._ready_timeout = ready_timeout
        self._started = False
        self._stopped = False
        self._mark = 0
        self._ip: str | None = ip
        self._fixed_ip = ip
        self._runs = 0  # how many times the server started: each run logs one ready line
        self._final_stdout: str | None = None
        self._final_stderr: str | None = None

    # ---- lifecycle ------------------------------------------------------------------------

    def start(self) -> Self:
        if self._started:
            return self
        if not (self.tree / "simple").is_dir():
            raise UpstreamError(f"{self.tree} has no simple/ directory (write_simple_index?)")
        _make_world_readable(self.tree)
        image = self._image or build_upstream_image(base=self._base)
        self._started = True
        docker.run(
            image,
            detach=True,
            name=self.name,
            networks=[self.network],
            network_aliases=[self.alias],
            ip=self._fixed_ip,
            volumes=[(str(self.tree), TREE_MOUNT, "ro")],
            labels={LABEL: "upstream"},
            envs={
                "UPSTREAM_ROOT": TREE_MOUNT,
                "UPSTREAM_PORT": str(self.port),
                "UPSTREAM_DELAY_MS": str(self._delay_ms),
                "UPSTREAM_RATE_BPS": str(self._rate_bps),
            },
            read_only=True,
            cap_drop=["ALL"],
            security_options=["no-new-privileges"],
            pull="never",
        )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        """Until this run of the server logged its ready line (earlier runs logged theirs)."""
        self._runs += 1
        deadline = time.monotonic() + self._ready_timeout
        while True:
            _, stderr = _split_logs(self.name)
            if stderr.count(READY_MARKER) >= self._runs:
                return
            state = docker.container.inspect(self.name).state
            if not state.running:
                raise UpstreamError(
                    f"upstream container {self.name} exited (code {state.exit_code}):\n{stderr}"
                )
            if time.monotonic() > deadline:
                raise UpstreamError(f"upstream {self.name} not ready in time:\n{stderr}")
            time.sleep(0.05)

    def connect(self, network: str, *, alias: str | None = None) -> None:
        """Also attach the running upstream to ``network``, reachable there as ``alias``.

        Useful behind proxpi: when a file download from the upstream takes longer than
        ``PROXPI_DOWNLOAD_TIMEOUT`` (0.9 s), proxpi answers the client with a redirect to the
        upstream's own URL, so the client's network must resolve the upstream too.
        """
        docker.network.connect(network, self.name, alias=alias or self.alias)

    # ---- outages ---------------------------------------------------------------------------

    def halt(self) -> None:
        """Stop the server: nothing listens (its address stays if it was given one)."""
        docker.container.stop(self.name, time=2)

    def resume(self) -> None:
        """Start the halted server again and wait until it listens."""
        docker.container.start(self.name)
        self._wait_ready()

    def hang(self) -> None:
        """Freeze the server: connections are accepted and never answered."""
        docker.container.pause(self.name)

    def unhang(self) -> None:
        docker.container.unpause(self.name)

    def fail(self, status: int = 500) -> None:
        """Answer every request with ``status`` until ``heal()``."""
        (self.tree / FAULT_FILE).write_text(f"{status}\n")
        (self.tree / FAULT_FILE).chmod(0o644)

    def heal(self) -> None:
        (self.tree / FAULT_FILE).unlink(missing_ok=True)

    @contextmanager
    def outage(self, kind: Outage) -> Iterator[None]:
        """The upstream stopped, hung or failing for the block, then serving again."""
        if kind == "stopped" and not self._fixed_ip:
            raise UpstreamError("a stopped upstream keeps its address only with a fixed ip")
        begin, end = {
            "stopped": (self.halt, self.resume),
            "hung": (self.hang, self.unhang),
            "failing": (self.fail, self.heal),
        }[kind]
        begin()
        try:
            yield
        finally:
            end()

    def stop(self) -> None:
        """Remove the container (idempotent); its request log stays readable afterwards."""
        if not self._started or self._stopped:
            return
        self._stopped = True
        try:
            self._final_stdout, self._final_stderr = _split_logs(self.name)
        except DockerException:
            self._final_stdout, self._final_stderr = "", ""
        with suppress(NoSuchContainer):
            docker.container.remove(self.name, force=True)

    def close(self) -> None:
        self.stop()

    # ---- addresses ------------------------------------------------------------------------

    @property
    def base_url_inside_network(self) -> str:
        return f"http://{self.alias}:{self.port}"

    @property
    def url_inside_network(self) -> str:
        """Index URL for containers on the same network: ``http://upstream:8080/simple/``."""
        return f"{self.base_url_inside_network}/simple/"

    @property
    def ip(self) -> str:
        """The container's address on ``network`` (reachable from the host through the bridge)."""
        if self._ip is None:
            container = docker.container.inspect(self.name)
            networks = container.network_settings.networks or {}
            endpoint = networks.get(self.network)
            if endpoint is None or not endpoint.ip_address:
                raise UpstreamError(f"{self.name} has no address on {self.network}")
            self._ip = endpoint.ip_address
        return self._ip

    @property
    def host_base_url(self) -> str:
        return f"http://{self.ip}:{self.port}"

    @property
    def host_url(self) -> str:
        """Index URL usable from the host: ``http://<container ip>:8080/simple/``."""
        return f"{self.host_base_url}/simple/"

    # ---- request log ----------------------------------------------------------------------

    def logs(self) -> tuple[str, str]:
        """Raw (stdout, stderr) of the server."""
        if self._final_stdout is not None and self._final_stderr is not None:
            return self._final_stdout, self._final_stderr
        return _split_logs(self.name)

    def _all(self) -> list[dict[str, Any]]:
        return _parse_requests(self.logs()[0])

    def settle(self, quiet: float = 0.25, timeout: float = 5.0) -> None:
        """Wait until no new log line appeared for ``quiet`` seconds.

        A client can finish reading a response a moment before the server writes its log line,
        so counting right after a client returns may miss the last request.
        """
        if self._final_stdout is not None:
            return
        deadline = time.monotonic() + timeout
        count = len(self._all())
        while time.monotonic() < deadline:
            time.sleep(quiet)
            now = len(self._all())
            if now == count:
                return
            count = now

    def all_requests(self, *, settle: bool = True) -> list[dict[str, Any]]:
        """Every request logged since the container started."""
        if settle:
            self.settle()
        return self._all()

    def requests(self, *, settle: bool = True) -> list[dict[str, Any]]:
        """Requests logged since the last ``mark()`` (all of them if never marked)."""
        return self.all_requests(settle=settle)[self._mark :]

    def mark(self) -> int:
        """Start counting from now: later ``requests()`` etc. ignore what came before."""
        self._mark = len(self.all_requests())
        return self._mark

    reset_log_position = mark

    def file_downloads(self, *, settle: bool = True) -> list[dict[str, Any]]:
        """GET requests under ``/files/`` answered 200, since the mark."""
        return [
            record
            for record in self.requests(settle=settle)
            if record["method"] == "GET"
            and str(record["path"]).startswith("/files/")
            and record["status"] == 200
        ]

    def downloaded_bytes(self, *, settle: bool = True) -> int:
        """Body bytes sent for ``file_downloads()``."""
        return sum(int(record["bytes"]) for record in self.file_downloads(settle=settle))


@dataclass(frozen=True)
class ShellResult:
    exit_code: int
    output: str

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


class ClientContainer(_Started):
    """An idle container on ``network`` to run shell scripts in (e.g. pip), removed on exit.

    Its environment includes ``HERMETIC_PIP_ENV`` so pip never looks at the real PyPI.
    """

    def __init__(
        self,
        network: str,
        *,
        image: str | None = None,
        name: str | None = None,
        envs: Mapping[str, str] | None = None,
        volumes: tuple[tuple[str, str, str], ...] = (),
    ) -> None:
        self.network = network
        self.image = image or base_image()
        self.name = name or unique_name("client")
        self.envs = {**HERMETIC_PIP_ENV, **(envs or {})}
        self.volumes = volumes  # (source, target, mode): wheels to install from, say
        self._started = False
        self._removed = False

    def start(self) -> Self:
        if not self._started:
            self._started = True
            docker.run(
                self.image,
                ["sleep", "infinity"],
                detach=True,
                name=self.name,
                networks=[self.network],
                labels={LABEL: "client"},
                envs=self.envs,
                volumes=list(self.volumes),
                pull="never",
            )
        return self

    def sh(self, script: str, *, check: bool = True, timeout: int = 120) -> ShellResult:
        """Run ``script`` with ``sh -c`` (stderr into the output), killed after ``timeout`` s."""
        command = ["timeout", "-s", "KILL", str(timeout), "sh", "-c", "exec 2>&1\n" + script]
        try:
            output = docker.execute(self.name, command)
            result = ShellResult(0, output if isinstance(output, str) else "")
        except DockerException as error:
            output = (error.stdout or "") + (error.stderr or "")
            result = ShellResult(error.return_code, output)
        if check and not result.ok:
            raise UpstreamError(
                f"script failed with exit code {result.exit_code} in {self.name}:\n"
                f"{script}\n--- output ---\n{result.output}"
            )
        return result

    @property
    def ip(self) -> str:
        container = docker.container.inspect(self.name)
        endpoint = (container.network_settings.networks or {}).get(self.network)
        if endpoint is None or not endpoint.ip_address:
            raise UpstreamError(f"{self.name} has no address on {self.network}")
        return str(endpoint.ip_address)

    def remove(self) -> None:
        if not self._started or self._removed:
            return
        self._removed = True
        with suppress(NoSuchContainer):
            docker.container.remove(self.name, force=True)

    def close(self) -> None:
        self.remove()
