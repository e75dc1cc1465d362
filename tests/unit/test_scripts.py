"""The set-up scripts agree with the code that relies on them."""

from __future__ import annotations

import ipaddress
import subprocess

from devsupport.upstream_container import TEST_SUBNETS
from tests.conftest import REPO


def test_the_current_engines_firewall_admits_the_test_subnets() -> None:
    """The outage tests' networks use ``TEST_SUBNETS``; the current engine's own FORWARD
    rules (``--iptables=false``) must name them, or a fresh machine (FORWARD's policy DROP)
    drops their traffic (issue 23)."""
    result = subprocess.run(
        [str(REPO / "scripts" / "engines"), "networks", "current"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    admitted = [ipaddress.IPv4Network(line) for line in result.stdout.split()]
    assert any(TEST_SUBNETS.subnet_of(net) for net in admitted), admitted


def engines(*args: str) -> str:
    """The output of ``scripts/engines ARGS`` (sub-commands that read nothing of the host)."""
    result = subprocess.run(
        [str(REPO / "scripts" / "engines"), *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return result.stdout


# What the stock engine takes by default: its docker0 and the default address pools
# (172.17-31.x in /16s, 192.168.x in /20s).
STOCK_POOLS = [ipaddress.IPv4Network("172.16.0.0/12"), ipaddress.IPv4Network("192.168.0.0/16")]


def test_the_remote_engines_subnets_are_its_own() -> None:
    """The remote engine's link, bridge and pool overlap nothing the stock engine, the
    current one or the tests' fixed subnets take: its link is routed on the host beside
    theirs, and a network it makes must never shadow one of theirs."""
    remote = [ipaddress.IPv4Network(line) for line in engines("networks", "remote").split()]
    assert ipaddress.IPv4Network("10.251.0.0/30") in remote
    current = [ipaddress.IPv4Network(line) for line in engines("networks", "current").split()]
    others = [*STOCK_POOLS, *current, TEST_SUBNETS]
    overlapping = [(a, b) for a in remote for b in others if a.overlaps(b)]
    assert not overlapping, overlapping
    assert not [(a, b) for a in remote for b in remote if a is not b and a.overlaps(b)]


def test_the_remote_engine_is_reached_over_tcp_from_the_host() -> None:
    """Its clients talk to it at the namespace's address, with a client configuration of
    its own (the system's buildx, its own buildx state)."""
    lines = engines("env", "remote").splitlines()
    assert "export DOCKER_HOST=tcp://10.251.0.2:2375" in lines
    assert any(line.startswith("export DOCKER_CONFIG=/") for line in lines), lines
