"""One Credential, several Connections: one login, each Connection in its own
place, with real clients (OpenSSH sftp, curl)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from connectors.api.accounts import Account, permissions_for
from tests.integration.listeners.listener_harness import Listener, Workspace, listener_fixture
from tests.integration.listeners.test_listener_ftp import curl, url
from tests.integration.listeners.test_listener_sftp import sftp

pytestmark = pytest.mark.timeout(300)


def shared(workspace: Workspace, *, root: bool) -> None:
    """acme serves acme-conversions (at the root, or in folder conversions)
    and acme-clicks (in folder clicks)."""
    first = workspace.default_accounts()[0]
    conversions = first.model_copy(update={"folder": None if root else "conversions"})
    clicks = Account(
        username="acme", connection="acme-clicks", direction="Inbound", home="acme-clicks",
        permissions=permissions_for("Inbound"), filename_pattern="clicks_*.csv",
        password_hash=first.password_hash, authorized_keys=first.authorized_keys,
        folder="clicks")
    workspace.write_accounts([conversions, clicks, *workspace.default_accounts()[1:]])
    for name in ("conversions_1.csv", "clicks_1.csv"):
        (workspace.root / name).write_bytes(f"{name}\n".encode())


@pytest.fixture(params=["sftp", "ftp"])
def protocol(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def with_root(workspace: Workspace, protocol: str) -> Iterator[Listener]:
    shared(workspace, root=True)
    yield from listener_fixture(workspace, protocol)


@pytest.fixture
def folders_only(workspace: Workspace, protocol: str) -> Iterator[Listener]:
    shared(workspace, root=False)
    yield from listener_fixture(workspace, protocol)


def put(listener: Listener, name: str, target: str) -> bool:
    if listener.protocol == "sftp":
        return sftp(listener, "acme", f"put {name} {target}").returncode == 0
    source = str(listener.workspace.root / name)
    return curl(listener, "-T", source, url(listener, target)).returncode == 0


def listing(listener: Listener, folder: str) -> list[str]:
    if listener.protocol == "sftp":
        got = sftp(listener, "acme", f"ls -1 {folder}")
        assert got.returncode == 0, got.stderr
        return sorted(line.strip().rsplit("/", 1)[-1] for line in got.stdout.splitlines()[1:]
                      if line.strip())
    got = curl(listener, "--list-only", url(listener, folder.rstrip("/") + "/"))
    assert got.returncode == 0, got.stderr
    return sorted(got.stdout.split())


def test_each_connection_lands_in_its_own_place(with_root: Listener) -> None:
    listener = with_root
    home = listener.workspace.home
    assert put(listener, "conversions_1.csv", "/conversions_1.csv")
    assert put(listener, "clicks_1.csv", "/clicks/clicks_1.csv")
    assert (home("acme-conversions") / "conversions_1.csv").read_bytes() == b"conversions_1.csv\n"
    assert (home("acme-clicks") / "clicks_1.csv").read_bytes() == b"clicks_1.csv\n"
    assert (home("acme-clicks") / "receipt_clicks_1.csv.txt").exists()
    # A file goes only where its Connection's pattern allows.
    assert not put(listener, "clicks_1.csv", "/clicks_1.csv")
    assert not put(listener, "conversions_1.csv", "/clicks/conversions_1.csv")
    assert not (home("acme-conversions") / "clicks_1.csv").exists()
    assert listing(listener, "/") == ["clicks", "conversions_1.csv",
                                      "receipt_conversions_1.csv.txt"]
    assert listing(listener, "/clicks") == ["clicks_1.csv", "receipt_clicks_1.csv.txt"]


def test_a_login_of_folders_only(folders_only: Listener) -> None:
    listener = folders_only
    assert listing(listener, "/") == ["clicks", "conversions"]
    assert not put(listener, "conversions_1.csv", "/conversions_1.csv")
    assert put(listener, "conversions_1.csv", "/conversions/conversions_1.csv")
    assert (listener.workspace.home("acme-conversions") / "conversions_1.csv").exists()
    assert listing(listener, "/conversions") == ["conversions_1.csv",
                                                 "receipt_conversions_1.csv.txt"]


def test_paths_cannot_cross_from_one_place_to_another(with_root: Listener) -> None:
    listener = with_root
    (listener.workspace.root / "clicks_2.csv").write_bytes(b"x\n")
    assert not put(listener, "clicks_2.csv", "/clicks/../../acme-clicks/clicks_2.csv")
    assert not put(listener, "clicks_2.csv", "/../acme-clicks/clicks_2.csv")
    assert not (listener.workspace.home("acme-clicks") / "clicks_2.csv").exists()
