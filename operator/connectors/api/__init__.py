"""The Connection and Credential API: pydantic models, the one source of truth for
the CRD schema, the operator's checks and `connectors validate`."""

from ..ports import PARTNER_PORTS
from .common import API_VERSION, GROUP, VERSION, Condition, LocalObjectReference
from .connection import (
    DEFAULT_SCHEDULE,
    ConnectionSpec,
    ConnectionStatus,
    Endpoint,
    LastTransfer,
    Remote,
    is_platform_initiated,
)
from .credential import CredentialSpec, CredentialStatus
from .senders import EmailSettings

__all__ = [
    "API_VERSION",
    "DEFAULT_SCHEDULE",
    "GROUP",
    "PARTNER_PORTS",
    "VERSION",
    "Condition",
    "ConnectionSpec",
    "ConnectionStatus",
    "CredentialSpec",
    "CredentialStatus",
    "EmailSettings",
    "Endpoint",
    "LastTransfer",
    "LocalObjectReference",
    "Remote",
    "is_platform_initiated",
]
