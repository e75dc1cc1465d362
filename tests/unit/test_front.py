"""The front's nginx.conf: a packaged template, rendered by plain substitution."""

from __future__ import annotations

import re
import tomllib
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from orchestrator.proxy import front
from orchestrator.proxy.front import PLACEHOLDER, TEMPLATE, FrontConfig, nginx_conf, render

REPO = Path(__file__).resolve().parents[2]
CONFIG = FrontConfig(
    backend="proxy-backend",
    backend_port=5000,
    cache_bytes=20 * 1024**3,
    index_ttl=1800,
    download_timeout=900,
    digest="0123456789abcdef",
    name="proxy",
)
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
    conf = nginx_conf(CONFIG)
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
    for token in tokens(nginx_conf(CONFIG)):
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
    conf = nginx_conf(replace(CONFIG, download_timeout=120, index_ttl=60, cache_bytes=1024))
    assert "proxy_read_timeout 180s;" in conf
    assert "proxy_cache_valid 200 60s;" in conf
    assert "max_size=1024 " in conf
    assert "set $proxpi http://proxy-backend:5000;" in conf
    assert '\'{"digest": "0123456789abcdef", "name": "proxy"}\'' in conf


def test_the_same_settings_render_the_same_text() -> None:
    """The text's digest is part of the proxy's identity: no ordering, time or host in it."""
    first = nginx_conf(CONFIG)
    front._template.cache_clear()
    assert nginx_conf(CONFIG) == first
    assert nginx_conf(replace(CONFIG, name="other")) != first


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
        nginx_conf(replace(CONFIG, **change))


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
