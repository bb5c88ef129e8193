"""Teardown leaves the machine as it was before the node started.

Named to run after test_node.py: it stops the session's node cluster.
"""

from __future__ import annotations

from connectors import devcluster
from connectors.devcluster import NodeCluster
from tests.node.cluster import NodeClusterManager, host_snapshot


def test_teardown_restores_the_machine(node_manager: NodeClusterManager,
                                       node_cluster: NodeCluster) -> None:
    assert node_manager.baseline is not None
    during = host_snapshot()
    # The node did change things (else this test proves nothing).
    assert during["links"] != node_manager.baseline["links"]
    node_manager.stop()
    after = host_snapshot()
    for key, before in node_manager.baseline.items():
        assert after[key] == before, f"{key} differs after teardown"
    # Idempotent: a second stop on nothing is harmless.
    devcluster.stop(node_manager.workdir)
    assert host_snapshot() == after
