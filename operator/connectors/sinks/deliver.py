"""deliver(): one attempt at one sink; sink_id(): the sink's name in the store;
settle(): an outcome recorded there, with the next attempt's time.

    for claim in store.due_deliveries(worker):
        outcome = deliver(sinks[claim.sink_id], delivery, SecretFiles())
        settle(store, claim, outcome)
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
from collections.abc import Callable
from urllib.parse import urlsplit

from ..api.connection import Sink
from ..submissions.store import DeliveryClaim, SubmissionStore
from . import object_store, webhook
from .backoff import RetryPolicy
from .delivery import Delivery, Outcome
from .secrets import SecretFiles, SecretMissing

log = logging.getLogger(__name__)

HMAC_KEY = "hmac-key"
ACCESS_KEY_ID = "accessKeyId"
SECRET_ACCESS_KEY = "secretAccessKey"


def sink_id(sink: Sink) -> str:
    """'webhook:<host>:<hash>' or 's3:<bucket>:<hash>': short, stable, and the
    same for the same destination. The hash covers where files end up (the
    url; the endpoint, bucket and prefix), not how to get in: a new Secret or
    a corrected region is the same sink, so nothing is delivered twice for it
    and nothing waiting for it is orphaned."""
    if sink.webhook is not None:
        kind, name = "webhook", urlsplit(sink.webhook.url).hostname or "?"
        destination: dict[str, str | None] = {"url": sink.webhook.url}
    else:
        assert sink.object_store is not None  # a Sink has exactly one
        store = sink.object_store
        kind, name = "s3", store.bucket
        destination = {"endpoint": store.endpoint, "bucket": store.bucket,
                       "prefix": store.prefix}
    digest = hashlib.sha256(json.dumps([kind, destination], sort_keys=True).encode())
    return f"{kind}:{name}:{digest.hexdigest()[:8]}"


def deliver(sink: Sink, delivery: Delivery, secrets: SecretFiles) -> Outcome:
    """One attempt at delivering `delivery` to `sink`. Never raises: what goes
    wrong is an Outcome, retryable or not, in words without secrets."""
    try:
        if sink.webhook is not None:
            ref = sink.webhook.secret_ref
            key = None if ref is None else secrets.read(ref.name, HMAC_KEY)
            if key is not None and not key:
                return Outcome.retry(f"the key {HMAC_KEY} of the Secret {ref.name if ref else ''}"
                                     " is empty: put the signing key there")
            return webhook.post(sink.webhook.url, delivery, hmac_key=key)
        assert sink.object_store is not None
        name = sink.object_store.credentials_secret_ref.name
        return object_store.put(sink.object_store, delivery,
                                access_key_id=secrets.text(name, ACCESS_KEY_ID),
                                secret_access_key=secrets.text(name, SECRET_ACCESS_KEY))
    except SecretMissing as err:
        # The Secret may be on its way: a mounted Secret is updated in place.
        return Outcome.retry(str(err))
    except Exception as err:
        log.exception("delivering %s to %s failed unexpectedly", delivery.name, sink_id(sink))
        return Outcome.retry(f"delivering to {sink_id(sink)} failed unexpectedly "
                             f"({type(err).__name__})")


def settle(store: SubmissionStore, claim: DeliveryClaim, outcome: Outcome,
           policy: RetryPolicy | None = None, *, now: float | None = None,
           rand: Callable[[], float] = random.random) -> str:
    """Records `outcome` of the attempt `claim` made: Delivered; Pending again
    after a backoff (and the sink's other files with it, when the sink as a
    whole is unreachable); or Failed, when the sink refused for good or this
    was the last attempt. Returns the status recorded, or "Lost" when the
    claim was lost meanwhile (another processor holds it now)."""
    policy = policy or RetryPolicy()
    if outcome.delivered:
        return "Delivered" if store.mark_delivered(claim) else "Lost"
    if outcome.retryable and not policy.gives_up(claim.attempts):
        at = (store.now() if now is None else now) + policy.delay(
            claim.attempts, retry_after=outcome.retry_after, rand=rand)
        if not store.mark_retry(claim, at, outcome.message):
            return "Lost"
        if outcome.unreachable:
            store.postpone_sink(claim.sink_id, at)
        return "Pending"
    message = outcome.message
    if outcome.retryable:
        message = f"not delivered in {claim.attempts} attempts: {message}"
    return "Failed" if store.mark_failed(claim, message) else "Lost"
