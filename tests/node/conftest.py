"""Fixtures for tests that need a real node: `node_manager` and `node_cluster`.

One node cluster per test session (it takes tens of seconds to start and owns
machine-wide things: a bridge, iptables chains, an address on lo). Tests that
need it skip, with the reason, only when not root or when a package or kernel
feature is missing and cannot be installed.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from connectors.devcluster import NodeCluster
from tests.node.cluster import NodeClusterManager, skip_reason


@pytest.fixture(scope="session")
def node_manager() -> Iterator[NodeClusterManager]:
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    manager = NodeClusterManager()
    try:
        yield manager
    finally:
        manager.stop()


@pytest.fixture(scope="session")
def node_cluster(node_manager: NodeClusterManager) -> NodeCluster:
    return node_manager.start()
