"""Rules between a Connection and the Credential it names.

They need both objects, so no CRD schema can hold them: the operator reports
them in the CredentialReady condition, and `connectors validate` checks them
when the Credential is in the same files.
"""

from __future__ import annotations

from .connection import ConnectionSpec
from .credential import CredentialSpec


def credential_misfit(
    connection: ConnectionSpec, credential: CredentialSpec, name: str
) -> str | None:
    """Why this Credential cannot serve this Connection, or None when it can."""
    if credential.type == "PublicKey" and connection.method != "SFTP":
        return (
            f"Credential {name} is of type PublicKey, which only SFTP can use; "
            f"{connection.method} needs a Credential of type Password"
        )
    if credential.type != "PublicKey":
        return None
    if connection.platform_initiated and credential.public_key is not None:
        return (
            f"Credential {name} holds the partner's public key, which lets the partner log in "
            "to our listener; to log in to the partner's server the platform needs a private "
            "key: remove publicKey to have one generated, or set secretRef"
        )
    if not connection.platform_initiated and credential.public_key is None:
        return (
            f"Credential {name} has no publicKey: a partner who logs in to our listener with "
            "a key must supply its public half; set publicKey to the partner's key"
        )
    return None
