"""Who owns the objects that all of a namespace's Connections share.

A listener (its Deployment, Service and account table) and the processor serve
every Connection of their kind in the namespace, so they should live while any
of those Connections does, and go with the last one even when the operator is
not running (the CRDs deleted after the operator, say). Listing every
Connection as an owner does that, but it grows each shared object by about 170
bytes per Connection, every change rewrites all of it, and near 6,000
Connections a Deployment passes the API server's request size limit.

So each shared object names a sample: the OWNER_SAMPLE Connections whose uids
hash lowest. The sample is stable (a new Connection enters it only when its
hash is among the lowest, so adding one rarely rewrites the owners) and
unrelated to names, labels or age, so a bulk deletion by any of those leaves
at least one owner unless it takes nearly every Connection; deleting half of
them takes all 16 with a chance of 1 in 65,536. The operator still removes a
listener itself the moment no Connection needs it, and re-samples on every
sync, so an owner that goes is replaced within a sync.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

from ..api.common import API_VERSION

OWNER_SAMPLE = 16


def shared_owners(connections: Iterable[tuple[str, str]]) -> list[dict[str, Any]]:
    """ownerReferences for an object shared by `connections`, given as (name, uid)."""
    sample = sorted(connections, key=lambda c: hashlib.sha256(c[1].encode()).digest())
    return [
        # None is the controller: the object lives while any owner does.
        {"apiVersion": API_VERSION, "kind": "Connection", "name": name, "uid": uid,
         "controller": False, "blockOwnerDeletion": False}
        for name, uid in sorted(sample[:OWNER_SAMPLE])
    ]
