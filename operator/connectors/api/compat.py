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
    if credential.type == "PGPKey":
        return (
            f"Credential {name} is of type PGPKey: it holds an OpenPGP key that encrypts the "
            "files themselves, and logs nobody in; credentialRef needs a Credential of type "
            "Password (or PublicKey for SFTP). Reference a PGPKey from spec.pgp.decryptWith "
            "(Inbound) or spec.pgp.encryptTo (Outbound) instead"
        )
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


def pgp_credential_name(connection: ConnectionSpec) -> str | None:
    """The Credential that spec.pgp names (decryptWith or encryptTo), or None."""
    pgp = connection.pgp
    if pgp is None:
        return None
    reference = pgp.decrypt_with or pgp.encrypt_to
    return reference.name if reference is not None else None


def pgp_misfit(connection: ConnectionSpec, credential: CredentialSpec, name: str) -> str | None:
    """Why Credential `name` cannot do what the Connection's spec.pgp asks of it, or
    None when it can. decryptWith needs a PGPKey whose key pair the operator
    generated (the platform holds the private key); encryptTo needs a PGPKey with
    the partner's public key. `name` is the Credential that spec.pgp names
    (pgp_credential_name); a name spec.pgp does not name is a misfit too."""
    pgp = connection.pgp
    if pgp is None:
        return None
    if pgp.decrypt_with is not None and pgp.decrypt_with.name == name:
        field, role = "spec.pgp.decryptWith", "decrypt"
    elif pgp.encrypt_to is not None and pgp.encrypt_to.name == name:
        field, role = "spec.pgp.encryptTo", "encrypt"
    else:
        return f"Credential {name} is not the one spec.pgp names"
    if credential.type != "PGPKey":
        return (
            f"Credential {name} is of type {credential.type}, but {field} needs a Credential "
            "of type PGPKey (an OpenPGP key)"
        )
    if role == "decrypt" and credential.public_key is not None:
        return (
            f"Credential {name} holds a partner's public key, which can only encrypt; "
            f"{field} needs the platform's own key pair to decrypt with: use a PGPKey "
            "Credential without publicKey, whose key pair the operator generates, and give "
            "its status.publicKey to the partner"
        )
    if role == "encrypt" and credential.public_key is None:
        return (
            f"Credential {name} has no publicKey: {field} encrypts files to the partner's "
            "OpenPGP public key, so set publicKey to it (the partner exports it with "
            "gpg --armor --export KEY)"
        )
    return None
