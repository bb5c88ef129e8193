"""Whether a partner could succeed now: the WorkloadReady verdict of a Connection
served by a listener.

A listener Connection is ready only when a listener pod is Ready (the Service
sends partners only to those) and that pod has loaded an account table in
which this Connection's account is as the operator last wrote it. Each
listener reports the table it serves by its digest, in the namespace's state
ConfigMap (`<pod name>: "<protocol> <digest>,<digest>..."`, one digest per
shard of the table); the operator remembers what each shard it wrote
contained, by the same digest.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..api.accounts import STATE_CONFIGMAP, parse_state, state_value, table_digest
from ..api.connection import ConnectionSpec
from .conditions import FALSE, TRUE, Verdict
from .config import OperatorConfig

__all__ = ["STATE_CONFIGMAP", "ListenerPod", "listener_verdict", "parse_state", "state_value",
           "table_digest"]

# How many recent versions of each shard the operator remembers: a pod may still
# serve an older one that holds this Connection's account unchanged.
REMEMBERED_TABLES = 16


@dataclass(frozen=True)
class ListenerPod:
    name: str
    protocol: str
    ready: bool


def listener_verdict(connection: str, protocol: str, account: str, username: str,
                     pods: list[ListenerPod], state: Mapping[str, str],
                     tables: Mapping[str, Mapping[str, str]],
                     claim_phase: str | None, suspended: bool = False) -> Verdict:
    """WorkloadReady of a listener Connection.

    `account` is the fingerprint of the Connection's account in the table the
    operator wrote last; `tables` maps the digests of recent tables to the
    account fingerprints they held; `state` is the state ConfigMap's data;
    `claim_phase` the data volume claim's phase, when known.
    """
    listener = f"connectors-{protocol}"
    ready = [pod.name for pod in pods if pod.protocol == protocol and pod.ready]
    if not ready:
        if claim_phase is not None and claim_phase != "Bound":
            return Verdict(
                "WorkloadReady", FALSE, "VolumeNotBound",
                f"the data volume claim connectors-data is {claim_phase}: no volume is bound "
                f"yet, so listener {listener} cannot start. A storage class that binds on "
                "first use does so within moments; if this lasts, check the storage class "
                "(chart value data.storageClass): kubectl describe pvc connectors-data")
        return Verdict(
            "WorkloadReady", FALSE, "ListenerNotReady",
            f"no pod of listener {listener} is Ready, so partners cannot connect: see "
            f"kubectl describe deployment {listener}")
    serving = [name for name in ready
               if _serves(state.get(name), protocol, tables, connection, account)]
    if not serving:
        return Verdict(
            "WorkloadReady", FALSE, "AccountNotLoaded",
            f"listener {listener} has not loaded this Connection's account yet (a changed "
            "account table reaches the pods within about a minute)")
    refused = " (suspended: logins are refused)" if suspended else ""
    return Verdict("WorkloadReady", TRUE, "ListenerServing",
                   f"account {username} is served by {len(serving)} pod(s) of listener "
                   f"{listener}{refused}")


def _serves(value: str | None, protocol: str, tables: Mapping[str, Mapping[str, str]],
            connection: str, account: str) -> bool:
    parsed = parse_state(value or "")
    if parsed is None or parsed[0] != protocol:
        return False
    # Each digest names one shard the pod has loaded; the account is in one of them.
    return any(tables.get(digest, {}).get(connection) == account for digest in parsed[1])


def transfer_prerequisite(spec: ConnectionSpec, config: OperatorConfig) -> Verdict | None:
    """What a platform-initiated transfer needs beyond its CronJob and Credential,
    when it is missing: Outbound Email sends through the platform's relay."""
    if spec.method == "Email" and spec.direction == "Outbound" and not config.smtp_relay:
        return Verdict(
            "WorkloadReady", FALSE, "RelayNotConfigured",
            "Outbound Email sends through the platform's SMTP relay, and none is configured: "
            "set the operator's --smtp-relay HOST:PORT (chart value operator.smtpRelay)")
    return None
