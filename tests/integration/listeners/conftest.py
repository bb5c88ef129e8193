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

__all__ = ["ftp_listener", "sftp_listener", "smtp_listener", "workspace"]


@pytest.fixture
def sftp_listener(workspace: Workspace) -> Iterator[Listener]:
    yield from listener_fixture(workspace, "sftp")


@pytest.fixture
def ftp_listener(workspace: Workspace) -> Iterator[Listener]:
    yield from listener_fixture(workspace, "ftp")


@pytest.fixture
def smtp_listener(workspace: Workspace) -> Iterator[Listener]:
    yield from listener_fixture(workspace, "smtp", "--domain", "partners.example")
