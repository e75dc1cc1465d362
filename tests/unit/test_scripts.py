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
