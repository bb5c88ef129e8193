"""OpenPGP with the real gpg: keys, encryption, decryption and every way a
partner's file can fail to decrypt, checked against the `gpg` command line."""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tracemalloc
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from connectors import pgp
from tests.support import secrets as secret_scan
from tests.support.openpgp import GpgCli

pytestmark = pytest.mark.skipif(shutil.which("gpg") is None, reason="needs gpg (gnupg)")

MIB = 1024 * 1024


@dataclass(frozen=True)
class Pair:
    private: str
    public: str
    fingerprint: str


@pytest.fixture(scope="module")
def platform() -> Pair:
    """The platform's key pair, as the operator generates it for a Credential."""
    private, public, fingerprint = pgp.generate_key_pair("connectors <acme-pgp@partners>")
    secret_scan.remember(private)
    return Pair(private, public, fingerprint)


@pytest.fixture(scope="module")
def partner(tmp_path_factory: pytest.TempPathFactory, platform: Pair) -> Iterator[GpgCli]:
    """A partner's own gpg, with its own key pair and the platform's public key."""
    cli = GpgCli(tmp_path_factory.mktemp("partner") / "gnupg")
    cli.new_key("Partner <files@partner.example>")
    cli.import_key(platform.public)
    yield cli
    cli.stop()


def partner_fingerprint(partner: GpgCli) -> str:
    listing = partner.run("--with-colons", "--list-keys", "files@partner.example")
    return next(line.split(":")[9] for line in listing.stdout.decode().splitlines()
                if line.startswith("fpr:"))


def random_file(path: Path, size: int) -> Path:
    with path.open("wb") as handle:
        remaining = size
        while remaining:
            chunk = os.urandom(min(remaining, MIB))
            handle.write(chunk)
            remaining -= len(chunk)
    return path


def digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(MIB):
            h.update(chunk)
    return h.hexdigest()


def only_entries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# ---- keys ----------------------------------------------------------------------------------


def test_a_generated_pair_is_ed25519_with_a_cv25519_subkey_and_its_user_id(
    platform: Pair, tmp_path: Path
) -> None:
    assert re.fullmatch(r"[0-9A-F]{40}", platform.fingerprint)
    assert platform.public.startswith(pgp.PUBLIC_BEGIN)
    assert platform.public.rstrip().endswith(pgp.PUBLIC_END)
    assert platform.private.startswith(pgp.PRIVATE_BEGIN)
    assert "PRIVATE" not in platform.public
    cli = GpgCli(tmp_path / "gnupg")
    listing = cli.run("--with-colons", "--import-options", "show-only", "--import",
                      input=platform.public.encode()).stdout.decode().splitlines()
    records = [line.split(":") for line in listing]
    primary = next(r for r in records if r[0] == "pub")
    subkey = next(r for r in records if r[0] == "sub")
    assert (primary[3], primary[16]) == ("22", "ed25519")  # EdDSA
    assert (subkey[3], subkey[16], subkey[11]) == ("18", "cv25519", "e")  # ECDH, encrypt
    assert primary[6] == ""  # never expires
    assert any(r[0] == "uid" and r[9] == "connectors <acme-pgp@partners>" for r in records)
    assert next(r for r in records if r[0] == "fpr")[9] == platform.fingerprint


def test_the_private_key_has_no_passphrase(platform: Pair, tmp_path: Path) -> None:
    """The Secret is the protection; a passphrase nobody knows would lock the key."""
    cli = GpgCli(tmp_path / "gnupg")
    cli.import_key(platform.private)
    listing = cli.run("--with-colons", "--list-secret-keys").stdout.decode()
    # Field 15 of sec/ssb: "+" means the secret is present and unprotected in gpg 2.2.
    tokens = [line.split(":")[14] for line in listing.splitlines()
              if line.startswith(("sec", "ssb"))]
    assert tokens == ["+", "+"]
    cli.stop()


def every_call(pair: Pair, folder: Path) -> None:
    pgp.fingerprint_of(pair.public)
    source = random_file(folder / "a.bin", 1000)
    pgp.encrypt_file(source, folder / "a.pgp", pair.public)
    pgp.decrypt_file(folder / "a.pgp", folder / "a.out", pair.private)
    assert (folder / "a.out").read_bytes() == source.read_bytes()
    private, _, _ = pgp.generate_key_pair("connectors <other@ns>")
    secret_scan.remember(private)


def test_each_call_removes_its_gnupghome(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                         platform: Pair) -> None:
    scratch = Path(tempfile.mkdtemp(prefix="pgp-test-", dir="/tmp"))
    try:
        monkeypatch.setattr(tempfile, "tempdir", str(scratch))
        every_call(platform, tmp_path)
        assert list(scratch.iterdir()) == []
    finally:
        shutil.rmtree(scratch)


def test_a_temporary_folder_too_long_for_sockets_still_works(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, platform: Pair
) -> None:
    """gpg-agent's socket lives in the GNUPGHOME (without /run/user/<uid>), and
    a socket path holds at most 107 bytes."""
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    monkeypatch.setattr(tempfile, "tempdir", str(deep))
    every_call(platform, tmp_path)
    assert list(deep.iterdir()) == []


def test_fingerprint_of_a_partner_key_made_by_gpg(partner: GpgCli) -> None:
    fingerprint = partner_fingerprint(partner)
    assert pgp.fingerprint_of(partner.export(fingerprint)) == fingerprint
    # Leading and trailing blank lines, as YAML block scalars give them, are fine.
    assert pgp.fingerprint_of("\n" + partner.export(fingerprint) + "\n\n") == fingerprint


@pytest.mark.parametrize(("text", "words"), [
    ("my key is on the wiki", "not an ASCII-armored OpenPGP public key"),
    (f"{pgp.PUBLIC_BEGIN}\n\nbm90IGEga2V5\n{pgp.PUBLIC_END}\n", "could not read a public key"),
])
def test_fingerprint_of_refuses_what_is_not_a_key(text: str, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        pgp.fingerprint_of(text)


def test_fingerprint_of_refuses_a_private_key(platform: Pair) -> None:
    with pytest.raises(ValueError, match="private key") as raised:
        pgp.fingerprint_of(platform.private)
    assert platform.private.splitlines()[2] not in str(raised.value)


def test_fingerprint_of_refuses_private_packets_under_a_public_header(platform: Pair) -> None:
    relabelled = platform.private.replace("PRIVATE KEY", "PUBLIC KEY")
    with pytest.raises(ValueError, match="private key"):
        pgp.fingerprint_of(relabelled)


def test_fingerprint_of_refuses_two_keys(platform: Pair, partner: GpgCli) -> None:
    both = platform.public + partner.export(partner_fingerprint(partner))
    with pytest.raises(ValueError, match="2 key blocks"):
        pgp.fingerprint_of(both)
    # Two keys in one armored block, as `gpg --export A B` writes them.
    one_block = partner.run("--armor", "--export").stdout.decode()
    with pytest.raises(ValueError, match="holds 2 keys"):
        pgp.fingerprint_of(one_block)


def test_fingerprint_of_refuses_a_key_that_cannot_encrypt(tmp_path: Path) -> None:
    cli = GpgCli(tmp_path / "gnupg")
    fingerprint = cli.new_key("Signer <sign@partner.example>", encryption=None)
    with pytest.raises(ValueError, match="no key that can encrypt"):
        pgp.fingerprint_of(cli.export(fingerprint))


def test_fingerprint_of_refuses_short_rsa(tmp_path: Path) -> None:
    cli = GpgCli(tmp_path / "gnupg")
    fingerprint = cli.new_key("Old <old@partner.example>", "rsa2048", "rsa1024")
    with pytest.raises(ValueError, match="RSA of 1024 bits"):
        pgp.fingerprint_of(cli.export(fingerprint))


def test_fingerprint_of_refuses_an_expired_key(tmp_path: Path) -> None:
    cli = GpgCli(tmp_path / "gnupg")
    cli.run("--faked-system-time", "20200101T000000", "--quick-gen-key",
            "Gone <gone@partner.example>", "ed25519", "default", "2020-06-01")
    listing = cli.run("--with-colons", "--list-keys").stdout.decode()
    fingerprint = listing.split("fpr:::::::::")[1][:40]
    with pytest.raises(ValueError, match="expired"):
        pgp.fingerprint_of(cli.export(fingerprint))


# ---- encrypt and decrypt -------------------------------------------------------------------


def test_round_trip_of_a_multi_megabyte_file_streams(platform: Pair, tmp_path: Path) -> None:
    source = random_file(tmp_path / "report.csv", 24 * MIB + 12345)
    encrypted = tmp_path / "report.csv.pgp"
    decrypted = tmp_path / "out" / "report.csv"
    decrypted.parent.mkdir()
    tracemalloc.start()
    try:
        pgp.encrypt_file(source, encrypted, platform.public)
        pgp.decrypt_file(encrypted, decrypted, platform.private)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert digest(decrypted) == digest(source)
    assert encrypted.stat().st_size > source.stat().st_size  # random data does not compress
    # Chunks through gpg, never the file: the peak stays far below its 24 MiB.
    assert peak < 8 * MIB, peak
    assert only_entries(tmp_path / "out") == ["report.csv"]


def test_an_empty_file_round_trips(platform: Pair, tmp_path: Path) -> None:
    (tmp_path / "empty.csv").write_bytes(b"")
    pgp.encrypt_file(tmp_path / "empty.csv", tmp_path / "empty.csv.pgp", platform.public)
    pgp.decrypt_file(tmp_path / "empty.csv.pgp", tmp_path / "back.csv", platform.private)
    assert (tmp_path / "back.csv").read_bytes() == b""


def test_encrypted_output_is_binary_with_integrity_protection(
    platform: Pair, tmp_path: Path
) -> None:
    source = tmp_path / "a.csv"
    source.write_text("id,value\n1,2\n" * 1000)
    pgp.encrypt_file(source, tmp_path / "a.csv.pgp", platform.public)
    data = (tmp_path / "a.csv.pgp").read_bytes()
    assert not data.startswith(b"-----BEGIN")
    packets = GpgCli(tmp_path / "gnupg").run("--list-packets", input=data, check=False)
    listing = packets.stdout.decode()
    assert ":pubkey enc packet:" in listing
    # gpg 2.2: a symmetrically encrypted integrity-protected packet with an MDC;
    # newer gpg may show AEAD instead.
    assert "mdc_method: 2" in listing or "aead" in listing.lower(), listing


def test_a_file_gpg_encrypted_decrypts(platform: Pair, partner: GpgCli, tmp_path: Path) -> None:
    """What a partner runs: gpg --encrypt --recipient-file the platform's key."""
    public_file = tmp_path / "platform.asc"
    public_file.write_text(platform.public)
    source = random_file(tmp_path / "conversions.csv", 3 * MIB)
    encrypted = tmp_path / "conversions.csv.pgp"
    partner.run("--encrypt", "--recipient-file", str(public_file), "--output", str(encrypted),
                str(source))
    pgp.decrypt_file(encrypted, tmp_path / "plain.csv", platform.private)
    assert digest(tmp_path / "plain.csv") == digest(source)
    # Armored, signed and encrypted to two keys, as some partners send: also fine.
    both = tmp_path / "both.asc"
    partner.run("--armor", "--sign", "--encrypt", "--recipient-file", str(public_file),
                "--recipient", "files@partner.example", "--output", str(both), str(source))
    pgp.decrypt_file(both, tmp_path / "plain2.csv", platform.private)
    assert digest(tmp_path / "plain2.csv") == digest(source)


def test_gpg_decrypts_what_encrypt_file_wrote(partner: GpgCli, tmp_path: Path) -> None:
    """The partner's side of Outbound: their gpg with their private key."""
    source = random_file(tmp_path / "report.csv", 2 * MIB + 7)
    encrypted = tmp_path / "report.csv.pgp"
    pgp.encrypt_file(source, encrypted, partner.export(partner_fingerprint(partner)))
    partner.run("--decrypt", "--output", str(tmp_path / "back.csv"), str(encrypted))
    assert digest(tmp_path / "back.csv") == digest(source)


def test_gpg_decrypts_with_the_generated_private_key(platform: Pair, partner: GpgCli,
                                                     tmp_path: Path) -> None:
    """The generated private key is a normal OpenPGP key: gpg uses it as is."""
    source = tmp_path / "a.csv"
    source.write_text("a,b\n")
    public_file = tmp_path / "platform.asc"
    public_file.write_text(platform.public)
    partner.run("--encrypt", "--recipient-file", str(public_file), "--output",
                str(tmp_path / "a.pgp"), str(source))
    keyring = GpgCli(tmp_path / "platform-gnupg")
    keyring.import_key(platform.private)
    keyring.run("--decrypt", "--output", str(tmp_path / "a.out"), str(tmp_path / "a.pgp"))
    keyring.stop()
    assert (tmp_path / "a.out").read_text() == "a,b\n"


def test_encrypting_to_what_is_not_a_public_key_fails_and_writes_nothing(
    platform: Pair, tmp_path: Path
) -> None:
    source = tmp_path / "a.csv"
    source.write_text("a,b\n")
    out = tmp_path / "out"
    out.mkdir()
    for bad in ("not a key", platform.private):
        with pytest.raises(pgp.PgpError, match="partner's OpenPGP public key cannot be used"):
            pgp.encrypt_file(source, out / "a.csv.pgp", bad)
    assert only_entries(out) == []


# ---- what a partner may send that does not decrypt ------------------------------------------


def refused(source: Path, private: str, tmp_path: Path) -> str:
    """Decrypts into an empty folder; returns the error, after checking that
    nothing was left there."""
    out = tmp_path / "decrypted"
    out.mkdir(exist_ok=True)
    with pytest.raises(pgp.PgpError) as raised:
        pgp.decrypt_file(source, out / "result.csv", private)
    assert only_entries(out) == []
    message = str(raised.value)
    for line in private.splitlines()[2:-2]:
        assert line not in message
    return message


def test_a_plain_file_is_not_encrypted(platform: Pair, tmp_path: Path) -> None:
    plain = tmp_path / "conversions.csv"
    plain.write_text("id,amount\n1,2\n")
    message = refused(plain, platform.private, tmp_path)
    assert "conversions.csv is not encrypted" in message
    assert platform.fingerprint[:4] in message  # the key to encrypt to


def test_an_empty_file_is_said_to_be_empty(platform: Pair, tmp_path: Path) -> None:
    (tmp_path / "e.pgp").write_bytes(b"")
    assert "is empty" in refused(tmp_path / "e.pgp", platform.private, tmp_path)


def test_signed_but_not_encrypted_is_not_encrypted(partner: GpgCli, platform: Pair,
                                                   tmp_path: Path) -> None:
    source = tmp_path / "a.csv"
    source.write_text("a,b\n")
    partner.run("--sign", "--output", str(tmp_path / "a.csv.gpg"), str(source))
    message = refused(tmp_path / "a.csv.gpg", platform.private, tmp_path)
    assert "is not encrypted" in message
    assert "only signed or stored" in message


def test_a_file_for_another_key_names_both_keys(partner: GpgCli, platform: Pair,
                                                tmp_path: Path) -> None:
    source = tmp_path / "a.csv"
    source.write_text("a,b\n")
    partner.run("--encrypt", "--recipient", "files@partner.example", "--output",
                str(tmp_path / "a.pgp"), str(source))
    listing = partner.run("--with-colons", "--list-keys", "files@partner.example")
    their_subkey = next(line.split(":")[4] for line in listing.stdout.decode().splitlines()
                        if line.startswith("sub:"))
    ours = GpgCli(tmp_path / "ours")
    ours.import_key(platform.public)
    our_subkey = next(line.split(":")[4] for line in ours.run(
        "--with-colons", "--list-keys").stdout.decode().splitlines() if line.startswith("sub:"))
    message = refused(tmp_path / "a.pgp", platform.private, tmp_path)
    assert f"was encrypted to key {their_subkey}" in message
    assert f"not to the platform's key {our_subkey}" in message


def test_a_file_encrypted_with_a_passphrase_is_refused(partner: GpgCli, platform: Pair,
                                                       tmp_path: Path) -> None:
    source = tmp_path / "a.csv"
    source.write_text("a,b\n")
    partner.run("--symmetric", "--passphrase", "open sesame", "--output",
                str(tmp_path / "a.pgp"), str(source))
    assert "encrypted with a passphrase" in refused(tmp_path / "a.pgp", platform.private,
                                                    tmp_path)


@pytest.fixture
def ciphertext(platform: Pair, partner: GpgCli, tmp_path: Path) -> Path:
    """1 MiB encrypted by the partner's gpg without compression, so that a
    changed byte reaches the integrity check rather than the decompressor."""
    public_file = tmp_path / "platform.asc"
    public_file.write_text(platform.public)
    source = random_file(tmp_path / "source.bin", MIB)
    encrypted = tmp_path / "source.bin.pgp"
    partner.run("--compress-algo", "none", "--encrypt", "--recipient-file", str(public_file),
                "--output", str(encrypted), str(source))
    return encrypted


@pytest.mark.parametrize("keep", [0.5, 0.999])
def test_truncated_ciphertext_is_incomplete(ciphertext: Path, platform: Pair, tmp_path: Path,
                                            keep: float) -> None:
    data = ciphertext.read_bytes()
    cut = tmp_path / "cut.pgp"
    cut.write_bytes(data[:int(len(data) * keep)])
    message = refused(cut, platform.private, tmp_path)
    assert "cut.pgp is incomplete" in message
    assert "ends early" in message


def test_tampered_ciphertext_fails_the_integrity_check(ciphertext: Path, platform: Pair,
                                                       tmp_path: Path) -> None:
    data = bytearray(ciphertext.read_bytes())
    data[5000] ^= 0x01  # inside the first chunk of encrypted data, not a length header
    tampered = tmp_path / "tampered.pgp"
    tampered.write_bytes(bytes(data))
    message = refused(tampered, platform.private, tmp_path)
    assert "failed its integrity check (MDC)" in message


def test_tampered_compressed_ciphertext_is_damaged(platform: Pair, tmp_path: Path) -> None:
    source = tmp_path / "a.csv"
    source.write_text("id,value\n" + "".join(f"{i},{i * i}\n" for i in range(200_000)))
    encrypted = tmp_path / "a.csv.pgp"
    pgp.encrypt_file(source, encrypted, platform.public)
    data = bytearray(encrypted.read_bytes())
    data[len(data) // 3] ^= 0x40
    encrypted.write_bytes(bytes(data))
    message = refused(encrypted, platform.private, tmp_path)
    assert ("is damaged or was altered" in message
            or "failed its integrity check" in message), message


def test_a_stopped_decryption_leaves_nothing(platform: Pair, tmp_path: Path) -> None:
    """gpg is killed at its deadline. The file is large enough that no machine
    decrypts it within the deadline: 64 MiB took 0.15 to 0.3 s here, so 256 MiB
    needs about a second against 0.1 s (a 64 MiB file once finished in time)."""
    source = random_file(tmp_path / "big.bin", 256 * MIB)
    encrypted = tmp_path / "big.pgp"
    pgp.encrypt_file(source, encrypted, platform.public)
    source.unlink()
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(pgp.PgpError, match=r"took|did not answer|too long"):
        pgp.decrypt_file(encrypted, out / "big.bin", platform.private, timeout=0.1)
    assert only_entries(out) == []


def test_no_private_key_reaches_the_log(platform: Pair, partner: GpgCli, tmp_path: Path,
                                        caplog: pytest.LogCaptureFixture) -> None:
    """python-gnupg logs the first bytes of every key it imports or exports."""
    caplog.set_level(logging.DEBUG, logger="gnupg")
    public_file = tmp_path / "platform.asc"
    public_file.write_text(platform.public)
    (tmp_path / "a.csv").write_text("a\n")
    partner.run("--encrypt", "--recipient-file", str(public_file), "--output",
                str(tmp_path / "a.pgp"), str(tmp_path / "a.csv"))
    pgp.decrypt_file(tmp_path / "a.pgp", tmp_path / "a.out", platform.private)
    private, _, _ = pgp.generate_key_pair("connectors <logged@ns>")
    secret_scan.remember(private)
    logged = caplog.text
    assert "import_keys" in logged or "gpg" in logged  # debug logging was on
    for key in (platform.private, private):
        for line in key.splitlines()[2:-2]:
            secret_scan.assert_absent(line, logged, "the gnupg log")
        assert "PRIVATE KEY" not in logged


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("unshare") is None,
                    reason="needs root and unshare for a pid namespace")
def test_as_a_containers_init_no_gpg_agent_is_left_behind(tmp_path: Path) -> None:
    """In the image, `connectors` is pid 1: gpg's daemonized agent is its
    child, and must be reaped or each decryption leaves a zombie."""
    script = tmp_path / "as_init.py"
    script.write_text(
        "import os\n"
        "from pathlib import Path\n"
        "from connectors import pgp\n"
        "assert os.getpid() == 1\n"
        "private, public, _ = pgp.generate_key_pair('connectors <init@ns>')\n"
        f"src = Path({str(tmp_path)!r}) / 'a.csv'\n"
        "src.write_text('a\\n')\n"
        "for n in range(3):\n"
        "    pgp.encrypt_file(src, src.with_suffix('.pgp'), public)\n"
        "    pgp.decrypt_file(src.with_suffix('.pgp'), src.with_suffix('.out'), private)\n"
        "others = [p for p in os.listdir('/proc') if p.isdigit() and p != str(os.getpid())]\n"
        "print('left', len(others))\n"
    )
    result = subprocess.run(
        ["unshare", "--pid", "--fork", "--mount-proc", sys.executable, str(script)],
        capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "left 0"
