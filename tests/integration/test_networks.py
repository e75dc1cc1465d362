"""The engine's networking, as the other integration tests rely on it (issue 23).

A network with a subnet of the tests' own (``TEST_SUBNETS``, outside the engine's pools)
must carry traffic between its containers on every engine. On the current engine the
firewall rules are the project's own (``scripts/engines``, ``--iptables=false``); with
FORWARD's policy at DROP, as on a fresh machine, a subnet those rules do not name is
silently dropped, and the outage tests then failed with a proxy that never served. This
test says so in seconds, by name.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from devsupport.index import write_simple_index
from devsupport.upstream_container import (
    TEST_SUBNETS,
    ClientContainer,
    Upstream,
    fixed_subnet_network,
)
from devsupport.wheels import make_wheel


@pytest.fixture(scope="module")
def tiny_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    wheels = tmp_path_factory.mktemp("net-wheels")
    make_wheel(wheels, "orch-net-pkg", "1.0")
    tree = tmp_path_factory.mktemp("net-index")
    write_simple_index(wheels, tree)
    return tree


def test_containers_on_a_test_subnet_reach_each_other(engine: None, tiny_tree: Path) -> None:
    with (
        fixed_subnet_network("netcheck") as (network, subnet),
        Upstream(tiny_tree, network, ip=str(subnet[10])) as upstream,
        ClientContainer(network) as client,
    ):
        assert ipaddress.ip_address(upstream.ip) in TEST_SUBNETS
        fetch = (
            "python3 -c 'import urllib.request,sys; "
            f'sys.stdout.write(urllib.request.urlopen("{upstream.url_inside_network}'
            "orch-net-pkg/\", timeout=5).read().decode())'"
        )
        result = client.sh(fetch, check=False, timeout=30)
        assert result.ok, f"{client.ip} -> {upstream.ip} on {subnet}: {result.output}"
        assert "orch_net_pkg-1.0-py3-none-any.whl" in result.output
