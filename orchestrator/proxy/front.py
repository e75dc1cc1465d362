"""The proxy's front: nginx before proxpi, for what proxpi 1.3.1 cannot do alone.

proxpi keeps its index pages in memory and answers 500 for a page past its TTL, and for
the files of that project too, as soon as the upstream fails (proxpi#87; seen here); two
simultaneous cold misses of one file download it twice (its check-then-download race).
nginx, in front, keeps every page and file it passes on disk, in the front's own volume:

- pages are fresh for the index TTL, then refreshed in the background while the last good
  copy is served (``use_stale updating`` with ``background_update``), and served stale
  for as long as the upstream fails, also after a restart (the cache is on disk);
- files never change, so they are kept for good; ``proxy_cache_lock`` lets one request
  fetch a file while the others wait for it, so each file is downloaded once;
- ``/offline/index/`` serves the same cache without ever asking proxpi: builds use it
  when the upstream is known to be down, so no request reaches it, and a package that is
  not cached fails at once (a 404, which pip does not retry) instead of after proxpi's
  timeouts;
- proxpi is found by name through Docker's DNS at request time, not at start: the front
  starts, and serves its cache, while proxpi is down or not created yet, and follows
  proxpi to a new address when it is recreated;
- ``/_orchestrator/id`` answers the configuration's digest, so a build can tell that the
  proxy runs with its settings without asking Docker; ``/_orchestrator/backend`` answers
  proxpi's own health (which never asks the upstream); ``/_orchestrator/access.log``
  serves the access log (JSON lines, ranges allowed) for what a build fetched
  (``accesslog``).

The configuration is data, passed to the container in a variable and written by its
command at start, so any nginx image serves (the official one, or ours built on the
local base), and nothing on the host must stay in place for the container to restart.
"""

from __future__ import annotations

from dataclasses import dataclass

FRONT_DIR = "/var/cache/orchestrator-front"
CACHE_PATH = f"{FRONT_DIR}/cache"
LOG_PATH = f"{FRONT_DIR}/log/access.log"
LOG_ROTATE_BYTES = 64 * 1024 * 1024
CONF_VARIABLE = "ORCHESTRATOR_NGINX_CONF"
LISTEN_PORT = 5000
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


def nginx_conf(config: FrontConfig) -> str:
    """The whole nginx.conf, as text."""
    wait = max(60, int(config.download_timeout) + 60)
    ttl = max(1, config.index_ttl)
    return f"""\
worker_processes 1;
pid /tmp/nginx.pid;
error_log stderr warn;
events {{ worker_connections 1024; }}
http {{
  log_format orchestrator escape=json '{LOG_FORMAT}';
  access_log {LOG_PATH} orchestrator;
  client_body_temp_path /tmp/nginx-body;
  proxy_temp_path /tmp/nginx-proxy;
  fastcgi_temp_path /tmp/nginx-fastcgi;
  uwsgi_temp_path /tmp/nginx-uwsgi;
  scgi_temp_path /tmp/nginx-scgi;
  types {{ application/json json; text/plain log; }}
  default_type application/octet-stream;
  proxy_cache_path {CACHE_PATH} levels=1:2 keys_zone=pypi:32m
                   max_size={config.cache_bytes} inactive=3650d use_temp_path=off;
  # One cache entry per page and format (PEP 691 JSON or HTML), one per file.
  map $http_accept $simple_format {{
    default html;
    "~*application/vnd\\.pypi\\.simple\\.v1\\+json" json;
  }}
  map $http_user_agent $agent {{
    "~^(?<name>[^ ]+)" $name;
    default "-";
  }}
  map $uri $variant {{
    "~^/(offline/)?index/[^/]+/[^/]+$" file;
    default $simple_format;
  }}
  # Files as PyPI marks them: pip's and uv's HTTP caches then keep them without asking
  # again, where proxpi's `no-cache` made every warm install revalidate each file.
  map $variant $file_cache_control {{
    file "{FILE_CACHE_CONTROL}";
    default "";
  }}
  server {{
    listen {LISTEN_PORT};
    server_tokens off;
    # proxpi by name, resolved when asked: nginx starts without it and follows it when
    # it is recreated (an upstream{{}} block would resolve it once, at start, or fail).
    resolver {DOCKER_DNS} valid=10s ipv6=off;
    resolver_timeout 2s;
    set $proxpi http://{config.backend}:{config.backend_port};
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    proxy_set_header Host $http_host;
    proxy_set_header Accept-Encoding "";
    proxy_connect_timeout 10s;
    proxy_read_timeout {wait}s;
    proxy_send_timeout {wait}s;
    proxy_cache pypi;
    proxy_cache_key "$uri|$variant";
    proxy_cache_lock on;
    proxy_cache_lock_timeout {wait}s;
    proxy_cache_lock_age {wait}s;
    proxy_ignore_headers Cache-Control Expires Set-Cookie Vary;
    proxy_hide_header Cache-Control;
    add_header Cache-Control $file_cache_control;  # not on errors: a 404 may change
    proxy_cache_use_stale error timeout updating http_500 http_502 http_503 http_504;
    add_header X-Orchestrator-Cache $upstream_cache_status always;
    location = {ID_PATH} {{
      access_log off;
      default_type application/json;
      return 200 '{{"digest": "{config.digest}", "name": "{config.name}"}}';
    }}
    location = {BACKEND_PATH} {{
      access_log off;
      proxy_cache off;
      proxy_connect_timeout 1s;
      proxy_read_timeout 5s;
      rewrite ^ /health break;
      proxy_pass $proxpi;
    }}
    location = {ACCESS_LOG_PATH} {{
      access_log off;
      proxy_cache off;
      alias {LOG_PATH};
    }}
    location = {NOT_CACHED_PATH} {{
      internal;  # logged as the request it answers, under that request's URI
      default_type text/plain;
      return 404 "not in the proxy's cache, and the proxy is offline: the upstream is not asked\\n";
    }}
    location ~ "^/index/[^/]+/[^/]+$" {{
      proxy_cache_valid 200 3650d;
      proxy_pass $proxpi;
    }}
    location /index/ {{
      proxy_cache_valid 200 {ttl}s;
      proxy_cache_background_update on;
      proxy_pass $proxpi;
    }}
    location {OFFLINE_PREFIX}/ {{
      rewrite ^{OFFLINE_PREFIX}(/.*)$ $1 break;
      proxy_connect_timeout 1s;
      proxy_cache_valid 200 3650d;
      # Not cached: a 404 at once (pip retries a 502 five times, with backoff).
      error_page 502 504 ={NOT_CACHED_PATH.join(("404 ", ""))};
      proxy_pass http://{DEAD_END};
    }}
    location / {{
      limit_except GET HEAD {{ deny all; }}
      proxy_cache off;
      proxy_pass $proxpi;
    }}
  }}
}}
"""


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
