"""The proxy's front: nginx before proxpi, for what proxpi cannot do alone (1.3.1 nor
1.4.0a1, which changed none of this).

proxpi keeps its index pages in memory and answers 500 for a page past its TTL, and for
the files of that project too, as soon as the upstream fails (proxpi#87; seen here); two
simultaneous cold misses of one file download it twice (its check-then-download race).
nginx, in front, keeps every page and file it passes on disk, in the front's own volume:

- pages are fresh for the index TTL, then refreshed in the background while the last good
  copy is served (``use_stale updating`` with ``background_update``), and served stale
  for as long as the upstream fails, also after a restart (the cache is on disk);
- a page is kept once per format (PEP 691 JSON or HTML); the front chooses the format
  from ``?format=`` and the weights in ``Accept`` as proxpi 1.3.1 did (1.4.0a1 weighs
  them otherwise), and asks proxpi for exactly that type, so what a key holds is always
  the format it names, whichever proxpi answers;
- files never change, so they are kept for good and marked ``immutable`` for the
  installers' own caches (a file's 200 only: never a redirect, never an error);
  ``proxy_cache_lock`` lets one request fetch a file while the others wait for it, so
  each file is downloaded once;
- a file is fetched by the front itself, streamed to the first client as it arrives,
  where proxpi would download it whole before sending a byte (issue 22): proxpi keeps no
  files (``PROXPI_CACHE_SIZE=0``) and answers a file with a redirect to the upstream's
  URL, which the front's second server (the fetcher, on the container's loopback only)
  follows; where the upstream needs credentials (``proxy.credentials``), which would be
  in that URL, proxpi keeps downloading files itself and the front asks it for them;
- ``/offline/index/`` serves the same cache without ever asking proxpi: builds use it
  when the upstream is known to be down, so no request reaches it, and a package that is
  not cached fails at once (a 404, which pip does not retry) instead of after proxpi's
  timeouts; it takes no cache lock, so it never waits for an online request's fill
  either;
- proxpi is found by name through Docker's DNS at request time, not at start: the front
  starts, and serves its cache, while proxpi is down or not created yet, and follows
  proxpi to a new address when it is recreated;
- ``/_orchestrator/id`` answers the configuration's digest, so a build can tell that the
  proxy runs with its settings without asking Docker, and the container's host name (its
  short id), so a build can tell that the front its loopback reaches is the very
  container the engine reports (``reach``); ``/_orchestrator/backend`` answers
  proxpi's own health (which never asks the upstream); ``/_orchestrator/access.log``
  serves the access log (JSON lines, ranges allowed) for what a build fetched
  (``accesslog``).

The configuration is the packaged template ``orchestrator/resources/front/nginx.conf.template``
with this proxy's values in its ``{{name}}`` placeholders (``render``: no template engine,
nothing but those names replaced, and its text is the same for the same settings: its
digest is part of the proxy's identity). It is data, passed to the container in a variable
and written by its command at start, so any nginx image serves (the official one, or ours
built on the local base), and nothing on the host must stay in place for the container to
restart.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources

TEMPLATE = "front/nginx.conf.template"  # under orchestrator/resources
# `{{name}}`: nginx's own variables are `$name` and its blocks single braces, so a placeholder
# never stands for anything nginx means.
PLACEHOLDER = re.compile(r"\{\{([a-z_]+)\}\}")
WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
FRONT_DIR = "/var/cache/orchestrator-front"
CACHE_PATH = f"{FRONT_DIR}/cache"
LOG_PATH = f"{FRONT_DIR}/log/access.log"
LOG_ROTATE_BYTES = 64 * 1024 * 1024
CONF_VARIABLE = "ORCHESTRATOR_NGINX_CONF"
LISTEN_PORT = 5000
FETCHER_PORT = 5001  # the fetcher's, on the front container's loopback only
# The certificates the fetcher trusts for an https upstream when no CA bundle is mounted:
# where Debian's and Alpine's ca-certificates put them (the official nginx images both).
SYSTEM_CERTIFICATES = "/etc/ssl/certs/ca-certificates.crt"
DEAD_END = "127.0.0.1:9"  # nothing listens there: a proxied request fails at once
DOCKER_DNS = "127.0.0.11"  # the engine's resolver on user-defined networks
OFFLINE_PREFIX = "/offline"
ID_PATH = "/_orchestrator/id"
BACKEND_PATH = "/_orchestrator/backend"
ACCESS_LOG_PATH = "/_orchestrator/access.log"
NOT_CACHED_PATH = "/_orchestrator/not-cached"
# What PyPI's file host sends: a file's name never names other bytes (PyPI refuses to
# reuse a file name), so a client may keep it for good.
FILE_CACHE_CONTROL = "max-age=365000000, immutable, public"
# The access log as JSON lines: what the cache report and `proxy stats` read.
LOG_FORMAT = (
    '{"time":"$time_iso8601","msec":$msec,"method":"$request_method","uri":"$request_uri",'
    '"status":$status,"bytes":$body_bytes_sent,"cache":"$upstream_cache_status",'
    '"upstream_status":"$upstream_status","request_time":$request_time,'
    '"client":"$remote_addr","agent":"$agent"}'
)


@dataclass(frozen=True)
class FrontConfig:
    """What the nginx configuration depends on."""

    backend: str  # the proxpi container's name on the shared network
    backend_port: int
    cache_bytes: int
    index_ttl: int
    download_timeout: float
    digest: str  # of the whole proxy's settings, answered at /_orchestrator/id
    name: str
    streams: bool = True  # files fetched by the front's fetcher, not downloaded by proxpi
    trusted_certificates: str = SYSTEM_CERTIFICATES


def nginx_conf(config: FrontConfig) -> str:
    """The whole nginx.conf, as text: the packaged template with this proxy's values."""
    return render(_template(), _values(config))


def render(template: str, values: Mapping[str, str]) -> str:
    """``template`` with each ``{{name}}`` replaced by ``values[name]``, in one pass.

    Strict both ways: a placeholder without a value, or a value no placeholder asks for,
    is a mistake in this module or in the template, never something to render around.
    """
    names = set(PLACEHOLDER.findall(template))
    if names != set(values):
        missing = sorted(names - set(values))
        unused = sorted(set(values) - names)
        raise ValueError(f"template placeholders without values {missing}, unused {unused}")
    return PLACEHOLDER.sub(lambda match: values[match.group(1)], template)


@cache
def _template() -> str:
    """Read once per process: the template is part of the installed package."""
    return resources.files("orchestrator.resources").joinpath(TEMPLATE).read_text("utf-8")


def _values(config: FrontConfig) -> dict[str, str]:
    wait = max(60, int(config.download_timeout) + 60)
    return {
        "log_format": LOG_FORMAT,
        "log_path": LOG_PATH,
        "cache_path": CACHE_PATH,
        "cache_bytes": str(config.cache_bytes),
        "file_cache_control": FILE_CACHE_CONTROL,
        "listen_port": str(LISTEN_PORT),
        "docker_dns": DOCKER_DNS,
        "backend": _word(config.backend),
        "backend_port": str(config.backend_port),
        "wait": str(wait),
        "index_ttl": str(max(1, config.index_ttl)),
        "id_path": ID_PATH,
        "digest": _word(config.digest),
        "name": _word(config.name),
        "backend_path": BACKEND_PATH,
        "access_log_path": ACCESS_LOG_PATH,
        "not_cached_path": NOT_CACHED_PATH,
        "offline_prefix": OFFLINE_PREFIX,
        "dead_end": DEAD_END,
        "files_from": f"http://127.0.0.1:{FETCHER_PORT}" if config.streams else "$proxpi",
        "fetcher_port": str(FETCHER_PORT),
        "trusted_certificates": _path(config.trusted_certificates),
    }


def _word(value: str) -> str:
    """A name as nginx's text takes it unquoted and inside a JSON string: Docker's names and
    hex digests are; anything else (a quote, a space, a semicolon) would change the syntax."""
    if value and not WORD.fullmatch(value):
        raise ValueError(f"{value!r} cannot be written into the front's configuration")
    return value


def _path(value: str) -> str:
    """An absolute path nginx's text takes unquoted: no space, quote or semicolon."""
    if not re.fullmatch(r"/[A-Za-z0-9_./-]+", value):
        raise ValueError(f"{value!r} cannot be written into the front's configuration")
    return value


def start_command() -> list[str]:
    """The front container's command: write the configuration, run nginx, rotate its log.

    POSIX sh only, so that any nginx image runs it. Workers run as `nobody` with that
    user's own group (named differently on Alpine and Debian). The shell is PID 1: a signal
    it has no trap for is ignored, and nginx images stop with SIGQUIT, so it traps that too
    (without, every `docker stop` waited its 10 s for SIGKILL).
    """
    script = f"""\
set -e
printf '%s' "${CONF_VARIABLE}" > /tmp/nginx.conf
mkdir -p {CACHE_PATH} {FRONT_DIR}/log
group=$(id -gn nobody 2>/dev/null || echo nogroup)
chown nobody:"$group" {FRONT_DIR} {CACHE_PATH} {FRONT_DIR}/log
touch {LOG_PATH} && chown nobody:"$group" {LOG_PATH}
nginx -c /tmp/nginx.conf -g "daemon off; user nobody $group;" &
pid=$!
trap 'kill -QUIT $pid; wait $pid; exit 0' TERM INT QUIT
while kill -0 $pid 2>/dev/null; do
  sleep 30 & wait $! || true
  if [ "$(wc -c < {LOG_PATH})" -gt {LOG_ROTATE_BYTES} ]; then
    mv {LOG_PATH} {LOG_PATH}.1 && kill -USR1 $pid
  fi
done
wait $pid
"""
    return ["sh", "-c", script]
