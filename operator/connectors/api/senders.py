"""Connection.spec.email: who may deliver mail to an Inbound Email Push Connection,
and whether they get the results back.

One source for the CRD (a CEL rule with the message in words on each entry,
never the expression) and for the offline validator (the same expression in
Python), like filenamePattern in connection.py.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Annotated

from pydantic import AfterValidator, Field
from pydantic_core import PydanticCustomError

from .common import Model

# An allowed sender: an address (partner@example.com) or a whole domain
# (example.com, or @example.com): a DNS name of at least two labels.
_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_DOMAIN = rf"{_LABEL}(\.{_LABEL})+"
ALLOWED_SENDER_PATTERN = rf'^([^@\s"\\*]+@|@)?{_DOMAIN}$'
ALLOWED_SENDER_MESSAGE = (
    "each allowed sender is an address such as 'partner@example.com' or a whole domain "
    "such as 'example.com' (or '@example.com'); no wildcards ('*'), spaces, '\"' or '\\'"
)


def _allowed_sender(value: str) -> str:
    if not re.fullmatch(ALLOWED_SENDER_PATTERN, value):
        raise PydanticCustomError("allowed_sender", ALLOWED_SENDER_MESSAGE)
    return value


assert "'" not in ALLOWED_SENDER_PATTERN, "the CEL rule quotes it in a raw '...' string"
# Like FilenamePattern: the rule in words, never the expression.
AllowedSender = Annotated[
    str,
    Field(min_length=3, max_length=254, json_schema_extra={"x-kubernetes-validations": [
        {"rule": f"self.matches(r'{ALLOWED_SENDER_PATTERN}')",
         "message": ALLOWED_SENDER_MESSAGE},
    ]}),
    AfterValidator(_allowed_sender),
]


def sender_allowed(sender: str, allowed: Sequence[str] | None) -> bool:
    """Whether the envelope sender may deliver to a Connection whose allowed
    senders are `allowed` (None: anyone). The null sender of a bounce (aiosmtpd
    hands it over as "<>") has no address, so a list never matches it."""
    if allowed is None:
        return True
    address = sender.strip().lower()
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain:
        return False
    for entry in allowed:
        rule = entry.strip().lower()
        if rule.startswith("@") or "@" not in rule:
            if domain == rule.removeprefix("@"):
                return True
        elif address == rule:
            return True
    return False


class EmailSettings(Model):
    """Inbound Email Push: how the listener takes mail for this Connection."""

    allowed_senders: Annotated[list[AllowedSender], Field(max_length=64)] | None = None
    """Mail that partners' servers deliver without logging in (port 25, like to any mail
    server) is accepted only from these envelope senders (MAIL FROM): an address,
    'partner@example.com', or a whole domain, 'example.com' or '@example.com' (its
    sub-domains are not included). Others are refused with 550 before the message is sent.
    Without it, any sender may deliver to the Connection's address. A partner who logs in
    with the Credential on the submission port is not checked against it."""
    reply_with_results: bool = False
    """Answer each message whose files were checked with a reply to its envelope sender,
    the result files attached, through the platform's relay (the operator's
    --smtp-relay). Only to senders that allowedSenders admits, which is therefore
    required: a reply never goes to an address the Connection does not know."""
