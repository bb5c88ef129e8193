"""The SMTP listener's certificate: STARTTLS on both ports, renewed in place."""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING

from aiosmtpd.controller import Controller

from connectors.listeners.core.tls import stdlib_server_context

if TYPE_CHECKING:
    from connectors.listeners.smtp.server import SmtpSettings


def tls_context(settings: SmtpSettings) -> ssl.SSLContext | None:
    if settings.tls_cert_file is None:
        return None
    return stdlib_server_context(settings.tls_cert_file,
                                 settings.tls_key_file or settings.tls_cert_file)


def renew_certificate(controllers: list[Controller], settings: SmtpSettings) -> None:
    """Each new session gets its context from the controller's SMTP arguments:
    a fresh one there is what new STARTTLS handshakes use; sessions in progress
    keep theirs."""
    context = tls_context(settings)
    for controller in controllers:
        controller.SMTP_kwargs["tls_context"] = context
