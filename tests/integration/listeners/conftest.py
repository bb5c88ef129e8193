"""Fixtures of the listener tests; the harness lives in listener_harness.py."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.listeners.listener_harness import (
    Listener,
    Workspace,
    listener_fixture,
    workspace,
)
from tests.integration.listeners.smtp_support import TlsListener, smtp_listener_with_tls

__all__ = ["ftp_listener", "sftp_listener", "tls", "workspace"]


@pytest.fixture
def sftp_listener(workspace: Workspace) -> Iterator[Listener]:
    yield from listener_fixture(workspace, "sftp")


@pytest.fixture
def ftp_listener(workspace: Workspace) -> Iterator[Listener]:
    yield from listener_fixture(workspace, "ftp")


@pytest.fixture
def tls(workspace: Workspace) -> Iterator[TlsListener]:
    """The SMTP listener with a certificate: mail exchanger and submission port."""
    with smtp_listener_with_tls(workspace) as listener:
        yield listener
