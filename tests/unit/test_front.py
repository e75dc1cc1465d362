"""The front's nginx.conf: a packaged template, rendered by plain substitution."""

from __future__ import annotations

import random
import re
import tomllib
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from orchestrator.proxy import front
from orchestrator.proxy.front import PLACEHOLDER, TEMPLATE, nginx_conf, render
from tests.support.front import FRONT_CONFIG

REPO = Path(__file__).resolve().parents[2]
# An nginx token: a quoted string (escapes kept), a brace, a semicolon, or a bare word.
TOKEN = re.compile(r"""'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|[{};]|[^\s{};'"]+""")


def template_text() -> str:
    return (REPO / "orchestrator" / "resources" / TEMPLATE).read_text(encoding="utf-8")


def tokens(conf: str) -> list[str]:
    """nginx's tokens, comments left out (a `#` starts one only outside quotes)."""
    found = []
    for line in conf.splitlines():
        for token in TOKEN.findall(line):
            if token.startswith("#"):
                break
            found.append(token)
    return found


def test_every_placeholder_is_filled_and_nothing_else_is_touched() -> None:
    template = template_text()
    conf = nginx_conf(FRONT_CONFIG)
    assert set(PLACEHOLDER.findall(template)) >= {"backend", "digest", "wait", "index_ttl"}
    assert "{{" not in conf
    assert "}}" not in conf
    # Outside the placeholders, the text is the template's own, line for line.
    pattern = "".join(
        re.escape(part) if index % 2 == 0 else ".*?"
        for index, part in enumerate(PLACEHOLDER.split(template))
    )
    assert re.fullmatch(pattern, conf, flags=re.DOTALL)


def test_the_rendered_configuration_is_well_formed() -> None:
    """Every block closes, and every directive ends with `;` or opens a block: what nginx
    reads first (that nginx accepts it is checked against a real nginx, in integration)."""
    depth = 0
    pending: list[str] = []
    for token in tokens(nginx_conf(FRONT_CONFIG)):
        if token == "{":
            assert pending, "a block opens without a directive"
            depth, pending = depth + 1, []
        elif token == "}":
            assert not pending, f"directive without `;`: {pending}"
            depth -= 1
            assert depth >= 0
        elif token == ";":
            assert pending, "an empty directive"
            pending = []
        else:
            pending.append(token)
    assert (depth, pending) == (0, [])


def test_the_values_reach_their_directives() -> None:
    conf = nginx_conf(replace(FRONT_CONFIG, download_timeout=120, index_ttl=60, cache_bytes=1024))
    assert "proxy_read_timeout 180s;" in conf
    assert "proxy_cache_valid 200 60s;" in conf
    assert "max_size=1024 " in conf
    assert "set $proxpi http://proxy-backend:5000;" in conf
    assert '\'{"digest": "0123456789abcdef", "name": "proxy", "host": "$hostname"}\'' in conf


def test_the_same_settings_render_the_same_text() -> None:
    """The text's digest is part of the proxy's identity: no ordering, time or host in it."""
    first = nginx_conf(FRONT_CONFIG)
    front._template.cache_clear()
    assert nginx_conf(FRONT_CONFIG) == first
    assert nginx_conf(replace(FRONT_CONFIG, name="other")) != first


@pytest.mark.parametrize(
    ("template", "values", "message"),
    [
        ("a {{one}} {{two}}", {"one": "1"}, "without values ['two']"),
        ("a {{one}}", {"one": "1", "two": "2"}, "unused ['two']"),
    ],
)
def test_render_refuses_a_placeholder_or_a_value_left_over(
    template: str, values: dict[str, str], message: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        render(template, values)


def test_render_substitutes_once_so_a_value_is_never_read_as_a_placeholder() -> None:
    assert render("{{a}} {{b}}", {"a": "{{b}}", "b": "$b"}) == "{{b}} $b"


@pytest.mark.parametrize(
    "change",
    [{"name": "pro'xy"}, {"name": "proxy;"}, {"backend": "a b"}, {"digest": '"}'}],
)
def test_a_name_that_would_change_the_syntax_is_refused(change: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="cannot be written"):
        nginx_conf(replace(FRONT_CONFIG, **change))


def test_the_template_is_shipped_with_the_package() -> None:
    """Every file under orchestrator/resources but the package's own module is package
    data: a wheel without the template would render nothing."""
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    shipped = set(pyproject["tool"]["setuptools"]["package-data"]["orchestrator"])
    resources = REPO / "orchestrator" / "resources"
    files = {
        str(path.relative_to(REPO / "orchestrator"))
        for path in resources.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.name != "__init__.py"
    }
    assert f"resources/{TEMPLATE}" in files
    assert files <= shipped


# --- a page's format: the map chain, read as nginx reads it --------------------------------
#
# nginx cannot run here, so these tests evaluate the configuration's own `map` blocks the
# way nginx's map module does (exact keys first, case-insensitively, then the regexes in
# order, never on an empty value, then the default; `$1` is the matching regex's capture),
# and compare the result with proxpi 1.3.1's own choice (`proxpi_wants_json`). The
# integration tests check the same choices against the real nginx and proxpi.

JSON = "application/vnd.pypi.simple.v1+json"
LATEST_JSON = "application/vnd.pypi.simple.latest+json"
V1_HTML = "application/vnd.pypi.simple.v1+html"
LATEST_HTML = "application/vnd.pypi.simple.latest+html"
PIP = f"{JSON}, {V1_HTML}; q=0.1, text/html; q=0.01"
UV = f"{JSON}, {V1_HTML};q=0.2, text/html;q=0.01"
FIREFOX = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"
CHROME = (
    "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,"
    "image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7"
)
VARIABLE = re.compile(r"\$(?:(\d)|\{(\w+)\}|(\w+))")


def unquote(token: str) -> str:
    """A token as nginx's parser hands it on: quotes off, only \\" \\' \\\\ unescaped."""
    if token[:1] in "'\"" and token[-1:] == token[:1]:
        body = token[1:-1]
        assert not re.search(r"\\[tnr]", body), "nginx would read a control character"
        return re.sub(r"\\([\"'\\])", r"\1", body)
    return token


class Maps:
    """The `map` blocks and the server's `set` directives of one configuration."""

    def __init__(self, conf: str) -> None:
        self.maps: dict[str, tuple[str, list[tuple[str, str]]]] = {}
        self.sets: dict[str, str] = {}
        words: list[str] = []
        path: list[str] = []  # the directives whose blocks enclose the current token
        entries: list[tuple[str, str]] = []
        for token in tokens(conf):
            if token == "{":
                path.append(" ".join(words))
                words, entries = [], []
            elif token == "}":
                opener = path.pop().split()
                if opener[0] == "map":
                    self.maps[opener[2].lstrip("$")] = (unquote(opener[1]), entries)
                words = []
            elif token == ";":
                if path and path[-1].startswith("map "):
                    key, value = words
                    entries.append((unquote(key), unquote(value)))
                elif path == ["http", "server"] and words[0] == "set":
                    self.sets[words[1].lstrip("$")] = unquote(words[2])
                words = []
            else:
                words.append(token)

    def value(self, name: str, request: dict[str, str]) -> str:
        if name in self.sets:
            return self.expand(self.sets[name], request, None)
        if name not in self.maps:
            return request.get(name, "")
        source, entries = self.maps[name]
        subject = self.expand(source, request, None)
        default = next((value for key, value in entries if key == "default"), "")
        exact = {key.lower(): value for key, value in entries if key[0] != "~"}
        exact.pop("default", None)
        if subject.lower() in exact:
            return self.expand(exact[subject.lower()], request, None)
        for key, value in entries:
            if key.startswith("~") and subject:
                flags = re.IGNORECASE if key.startswith("~*") else 0
                match = re.search(key.lstrip("~*"), subject, flags)
                if match:
                    return self.expand(value, request, match)
        return self.expand(default, request, None)

    def expand(self, text: str, request: dict[str, str], match: re.Match[str] | None) -> str:
        def one(found: re.Match[str]) -> str:
            digit, braced, bare = found.groups()
            if digit:
                group = match.group(int(digit)) if match and int(digit) <= match.re.groups else ""
                return group or ""
            return self.value(braced or bare, request)

        return VARIABLE.sub(one, text)


MAPS = Maps(nginx_conf(FRONT_CONFIG))


def front_format(accept: str | None, query: str = "", uri: str = "/index/demo/") -> str:
    """The cache key's format the front gives a page request (what `$variant` says)."""
    request = {"uri": uri, "http_accept": accept or ""}
    arg = re.search(r"(?:^|&)format=([^&]*)", query, flags=re.IGNORECASE)
    request["arg_format"] = arg.group(1) if arg else ""
    return MAPS.value("variant", request)


def quality(ranges: list[tuple[str, float]], *names: str) -> float:
    """werkzeug's MIMEAccept.quality of ``names[0]``: the most specific matching range's
    weight, else 0. More names: the front's reading, where they count as one range."""
    kind = names[0].split("/")[0]
    for patterns in (names, (f"{kind}/*",), ("*/*",)):
        weights = [q for media, q in ranges if media in patterns]
        if weights:
            return max(weights)
    return 0.0


def proxpi_wants_json(accept: str | None, *, as_one_range: bool = False) -> bool | None:
    """proxpi 1.3.1's server._wants_json, without `?format=`: None where it answers 406.

    Its two passes (latest+json, then v1+json) come to the JSON types' heavier weight
    against the same HTML weights. ``as_one_range``: with the front's documented reading
    of v1 and latest as one range (a wildcard then never speaks for the one not named)."""
    ranges = []
    for item in (accept or "").split(","):
        media, *params = [part.strip() for part in item.split(";")]
        weights = [p.split("=", 1)[1] for p in params if p.lower().startswith("q=")]
        ranges.append((media.lower(), float(weights[0]) if weights else 1.0))
    if as_one_range:
        json_q = quality(ranges, JSON, LATEST_JSON)
        pypi_html_q = quality(ranges, V1_HTML, LATEST_HTML)
    else:
        json_q = max(quality(ranges, JSON), quality(ranges, LATEST_JSON))
        pypi_html_q = max(quality(ranges, V1_HTML), quality(ranges, LATEST_HTML))
    text_q = quality(ranges, "text/html")
    html_q = max(text_q, pypi_html_q)
    if not json_q and not html_q:
        return None
    return json_q >= html_q and json_q > text_q


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (PIP, "json"),
        (UV, "json"),
        (f"{JSON}, {V1_HTML};q=0.2, text/html;q=0.01", "json"),  # orchestrator's own probe
        (JSON, "json"),
        (LATEST_JSON, "json"),  # (a): stored JSON under the html key
        ("text/html, application/vnd.pypi.simple.v1+json;q=0.9", "html"),  # (a): the reverse
        (FIREFOX, "html"),
        (CHROME, "html"),
        ("text/html", "html"),  # pip before 22.2
        (V1_HTML, "html"),
        (LATEST_HTML, "html"),
        ("*/*", "html"),  # curl, requests: JSON must weigh more than text/html
        (None, "html"),  # proxpi: 406; the front answers its default
        ("application/json", "html"),  # the same
        ("application/*", "json"),
        (f"{JSON};q=0.5, {V1_HTML};q=0.5", "json"),  # a tie with PyPI's HTML: JSON
        (f"{JSON};q=0.5, text/html;q=0.5", "html"),  # a tie with text/html: HTML
        (f"{JSON};q=0.50, text/html;q=0.5", "html"),  # the same weights, written otherwise
        (f"{JSON};q=0.55, text/html;q=0.5", "json"),
        (f"{JSON};q=0.05, text/html;q=0.005", "json"),
        (f"{JSON};q=0, */*", "html"),  # q=0: not acceptable at all
        (f"{JSON};q=1.0, text/html;q=0.999", "json"),
        (f"TEXT/HTML, {JSON.upper()};Q=0.9", "html"),  # names and q are case-insensitive
    ],
)
def test_each_client_gets_the_format_proxpi_would_choose(accept: str | None, expected: str) -> None:
    assert front_format(accept) == expected
    assert front_format(accept) == ("json" if proxpi_wants_json(accept) else "html")


def test_the_choice_agrees_with_proxpi_for_any_weights_and_order() -> None:
    """Headers made of the ranges both read (each named once, no parameters), in any order,
    with any weights written any way. The front reads v1 and latest of a format as one
    range (documented in the template); the next test shows where that differs."""
    generator = random.Random(691)
    ranges = [
        [JSON, LATEST_JSON],  # one of the two at most: the front weighs them as one range
        [V1_HTML, LATEST_HTML],
        ["text/html"],
        ["application/*"],
        ["text/*"],
        ["*/*"],
        ["application/json"],
        ["application/xhtml+xml"],
        ["image/webp"],
    ]
    weights = ["", "1", "1.0", "1.000", "0", "0.0", "0.001", "0.01", "0.010", "0.1", "0.2"]
    weights += ["0.5", "0.50", "0.500", "0.55", "0.9", "0.99", "0.999"]
    for _ in range(3000):
        chosen = [generator.choice(group) for group in ranges if generator.random() < 0.5]
        generator.shuffle(chosen)
        items = []
        for media in chosen:
            weight = generator.choice(weights)
            separator = generator.choice([";", "; ", " ;"])
            items.append(f"{media}{separator}q={weight}" if weight else media)
        accept = generator.choice([",", ", "]).join(items)
        expected = "json" if proxpi_wants_json(accept, as_one_range=True) else "html"
        assert front_format(accept) == expected, accept


def test_where_the_front_reads_v1_and_latest_as_one_range() -> None:
    """Only a header that refuses one of them by name and accepts it by wildcard: proxpi
    then answers the other; the front answers a format the client also accepts, under its
    own key. No installer sends such a header."""
    accept = f"{JSON};q=0, application/*"
    assert proxpi_wants_json(accept) is True
    assert front_format(accept) == "html"


@pytest.mark.parametrize(
    ("query", "accept", "expected"),
    [
        ("format=application/vnd.pypi.simple.v1%2Bjson", FIREFOX, "json"),
        ("format=application%2Fvnd.pypi.simple.v1%2bjson", FIREFOX, "json"),
        ("format=application/vnd.pypi.simple.v1+json", FIREFOX, "json"),  # `+` as PEP 691 has it
        ("format=application/vnd.pypi.simple.latest%2Bjson", FIREFOX, "json"),
        ("x=1&format=application/vnd.pypi.simple.v1%2Bjson", None, "json"),
        ("format=text/html", PIP, "html"),
        ("format=text%2Fhtml", PIP, "html"),
        ("format=application/vnd.pypi.simple.v1%2Bhtml", PIP, "html"),
        ("format=application/vnd.pypi.simple.latest%2Bhtml", UV, "html"),
        ("format=application/json", PIP, "json"),  # not a PEP 691 type: Accept decides
        ("format=application/json", FIREFOX, "html"),
        ("format=%74ext/html", PIP, "json"),  # written otherwise: Accept decides
        ("format=", PIP, "json"),
    ],
)
def test_format_in_the_query_decides_before_accept(
    query: str, accept: str | None, expected: str
) -> None:
    assert front_format(accept, query) == expected


@pytest.mark.parametrize("accept", [PIP, FIREFOX, LATEST_JSON, None])
def test_proxpi_is_asked_for_exactly_the_format_the_key_names(accept: str | None) -> None:
    """The one media type the front sends makes proxpi choose that same format."""
    request = {"uri": "/index/demo/", "http_accept": accept or "", "arg_format": ""}
    sent = MAPS.value("proxpi_accept", request)
    assert sent in (JSON, "text/html")
    assert proxpi_wants_json(sent) is (MAPS.value("variant", request) == "json")


def test_offline_pages_and_files_are_keyed_as_online_ones() -> None:
    for accept in (PIP, FIREFOX):
        assert front_format(accept, uri="/offline/index/demo/") == front_format(accept)
    assert front_format(PIP, uri="/index/demo/demo-1.0-py3-none-any.whl") == "file"
    assert front_format(PIP, uri="/offline/index/demo/demo-1.0-py3-none-any.whl") == "file"


def test_files_and_other_requests_pass_the_client_s_accept_on() -> None:
    for uri in ("/index/demo/demo-1.0-py3-none-any.whl", "/health", "/"):
        request = {"uri": uri, "http_accept": "*/*", "arg_format": ""}
        assert MAPS.value("proxpi_accept", request) == "*/*"


# --- what is marked immutable -------------------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "status", "marked"),
    [
        ("/index/demo/demo-1.0-py3-none-any.whl", "200", True),
        ("/offline/index/demo/demo-1.0-py3-none-any.whl", "200", True),
        # proxpi's redirect to the upstream (cache_size 0, download timeout, failed fetch)
        ("/index/demo/demo-1.0-py3-none-any.whl", "302", False),
        ("/index/demo/demo-1.0-py3-none-any.whl", "301", False),
        ("/index/demo/demo-1.0-py3-none-any.whl", "307", False),
        ("/index/demo/demo-1.0-py3-none-any.whl", "304", False),
        ("/index/demo/demo-1.0-py3-none-any.whl", "404", False),
        ("/index/demo/demo-1.0-py3-none-any.whl", "500", False),
        ("/index/demo/", "200", False),
        ("/", "200", False),
    ],
)
def test_only_a_file_s_200_is_marked_immutable(uri: str, status: str, marked: bool) -> None:
    request = {"uri": uri, "status": status, "http_accept": PIP, "arg_format": ""}
    expected = front.FILE_CACHE_CONTROL if marked else ""
    assert MAPS.value("file_cache_control", request) == expected


def test_only_a_file_s_200_is_kept_by_the_front() -> None:
    """`proxy_cache_valid 200 ...` with a status named keeps that status alone (without
    one, nginx would keep 301 and 302 too): a redirect is asked for again next time."""
    valid = [
        line.split()
        for line in nginx_conf(FRONT_CONFIG).splitlines()
        if "proxy_cache_valid" in line
    ]
    assert valid
    assert all(words[1] == "200" and len(words) == 3 for words in valid), valid
    assert "proxy_ignore_headers Cache-Control Expires Set-Cookie Vary;" in nginx_conf(FRONT_CONFIG)
