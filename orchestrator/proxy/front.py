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
  not cached fails at once instead of after proxpi's timeouts;
- ``/_orchestrator/id`` answers the configuration's digest, so a build can tell that the
  proxy runs with its settings without asking Docker; ``/_orchestrator/access.log``
  serves the access log (JSON lines) for the cache report after each build.

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
  upstream proxpi {{
    server {config.backend}:{config.backend_port} max_fails=0;
    keepalive 8;
  }}
  server {{
    listen {LISTEN_PORT};
    server_tokens off;
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
    proxy_cache_use_stale error timeout updating http_500 http_502 http_503 http_504;
    add_header X-Orchestrator-Cache $upstream_cache_status always;
    location = /_orchestrator/id {{
      access_log off;
      default_type application/json;
      return 200 '{{"digest": "{config.digest}", "name": "{config.name}"}}';
    }}
    location = /_orchestrator/access.log {{
      access_log off;
      proxy_cache off;
      alias {LOG_PATH};
    }}
    location ~ "^/index/[^/]+/[^/]+$" {{
      proxy_cache_valid 200 3650d;
      proxy_pass http://proxpi;
    }}
    location /index/ {{
      proxy_cache_valid 200 {ttl}s;
      proxy_cache_background_update on;
      proxy_pass http://proxpi;
    }}
    location /offline/ {{
      rewrite ^/offline(/.*)$ $1 break;
      proxy_connect_timeout 1s;
      proxy_cache_valid 200 3650d;
      proxy_pass http://{DEAD_END};
    }}
    location / {{
      limit_except GET HEAD {{ deny all; }}
      proxy_cache off;
      proxy_pass http://proxpi;
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
