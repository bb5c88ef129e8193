"""Sinks: where accepted files go once checked (spec.submissions.deliverTo).

A library the namespace's processor calls, pure of Kubernetes (the import
contracts keep kopf, kubernetes, the controller, listeners, jobs and the
processor out):

- delivery.py: what is delivered (Delivery) and what became of it (Outcome);
- webhook.py: a binary-mode CloudEvent over HTTP, the file as its body, signed;
- object_store.py: an S3-compatible bucket, once per trace id;
- secrets.py: the sinks' Secrets as the processor pod mounts them;
- backoff.py: when to try again;
- deliver.py: deliver() to one sink, sink_id() to name it in the store, and
  settle() to record an outcome there.

Delivery is at least once: the trace id is the idempotency key (the
CloudEvent's id, the object's key), so a receiver can drop a repeat.
"""

from .backoff import RetryPolicy
from .deliver import deliver, settle, sink_id
from .delivery import Delivery, Outcome
from .secrets import SECRETS_ROOT, SecretFiles, SecretMissing

__all__ = [
    "SECRETS_ROOT",
    "Delivery",
    "Outcome",
    "RetryPolicy",
    "SecretFiles",
    "SecretMissing",
    "deliver",
    "settle",
    "sink_id",
]
