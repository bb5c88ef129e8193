"""Email attachment rules and file name sanitising (landing/attachments.py)."""

from __future__ import annotations

from email.message import EmailMessage

import pytest

from connectors.landing.attachments import (
    MAX_PARTS,
    filename_refusal,
    sanitize_filename,
    select_attachments,
)
from connectors.landing.names import MAX_NAME_BYTES


def message(*names: str) -> EmailMessage:
    msg = EmailMessage()
    msg["Subject"] = "files"
    msg.set_content("body")
    for name in names:
        msg.add_attachment(
            f"data of {name}".encode(), maintype="text", subtype="csv", filename=name
        )
    return msg


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("report.csv", "report.csv"),
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\x\\report.csv", "report.csv"),
        ("/abs/path/r.csv", "r.csv"),
        ("a\x00b.csv", None),  # refused, not repaired
        ("a\r\nb.csv", None),
        ("report\u202ecsv.exe", None),  # a right-to-left override hides the real ending
        ("..", None),
        (".hidden.csv", None),
        ("dir/", None),
        ("", None),
        (None, None),
        ("x" * 300, None),
        ("x" * MAX_NAME_BYTES, "x" * MAX_NAME_BYTES),
        ("x" * (MAX_NAME_BYTES + 1), None),
        # 128 characters but 245 bytes: no room left for receipt_<name>.txt
        ("r" + "\u00e9" * 122 + ".csv", None),
        (" spaced.csv ", "spaced.csv"),
        ("caf\u0065\u0301.csv", "caf\u00e9.csv"),
    ],
)
def test_sanitize_filename(raw: str | None, expected: str | None) -> None:
    assert sanitize_filename(raw) == expected


def test_all_matching_attachments_are_accepted() -> None:
    verdict = select_attachments(message("audiences_1.csv", "audiences_2.csv"), "audiences_*.csv")
    assert verdict.is_accepted
    assert [a.name for a in verdict.accepted] == ["audiences_1.csv", "audiences_2.csv"]
    assert verdict.accepted[0].payload == b"data of audiences_1.csv"


def test_one_non_matching_attachment_ignores_the_whole_message() -> None:
    verdict = select_attachments(message("audiences_1.csv", "photo.jpg"), "audiences_*.csv")
    assert not verdict.is_accepted
    assert verdict.accepted == ()
    assert verdict.rejected == ("photo.jpg",)
    assert "photo.jpg" in (verdict.reason or "")


def test_reserved_attachments_are_left_out() -> None:
    verdict = select_attachments(
        message("audiences_1.csv", "receipt_audiences_0.csv", "result_x.csv"), "*.csv"
    )
    assert verdict.is_accepted
    assert [a.name for a in verdict.accepted] == ["audiences_1.csv"]
    assert verdict.ignored == ("receipt_audiences_0.csv", "result_x.csv")


def test_only_reserved_attachments_is_nothing_to_accept() -> None:
    verdict = select_attachments(message("receipt_a.csv"), "*.csv")
    assert not verdict.is_accepted


def test_no_attachment_is_ignored() -> None:
    assert not select_attachments(message(), "*.csv").is_accepted


def test_path_in_attachment_name_is_stripped_before_matching() -> None:
    verdict = select_attachments(message("../../audiences_1.csv"), "audiences_*.csv")
    assert [a.name for a in verdict.accepted] == ["audiences_1.csv"]


def test_duplicate_names_are_refused() -> None:
    verdict = select_attachments(message("a/x.csv", "b/x.csv"), "*.csv")
    assert not verdict.is_accepted


def test_too_many_parts_is_refused() -> None:
    names = [f"f{i}.csv" for i in range(MAX_PARTS + 1)]
    verdict = select_attachments(message(*names), "*.csv")
    assert not verdict.is_accepted
    assert "MIME parts" in (verdict.reason or "")


def test_too_many_parts_follows_the_given_limit() -> None:
    verdict = select_attachments(message("a.csv", "b.csv"), "*.csv", max_parts=3)
    assert not verdict.is_accepted
    assert "too many MIME parts" in (verdict.reason or "")
    assert select_attachments(message("a.csv"), "*.csv", max_parts=3).is_accepted


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        (None, "no file name"),
        ("dir/", "no file name"),
        ("a\x01.csv", "control"),
        ("..x.csv", "'.'"),
        ("\u00e9" * 200, "bytes"),
    ],
)
def test_a_refusal_says_why(raw: str | None, words: str) -> None:
    assert words in (filename_refusal(raw) or "")


def test_one_refused_name_ignores_the_whole_message_with_the_reason() -> None:
    long_name = "audiences_" + "\u00e9" * 120 + ".csv"
    verdict = select_attachments(
        message("audiences_1.csv", long_name, "audiences_\x07.csv"), "audiences_*.csv"
    )
    assert not verdict.is_accepted
    assert verdict.accepted == ()
    reason = verdict.reason or ""
    assert "bytes long" in reason
    assert "control" in reason
    assert "\\x07" in reason  # shown escaped, never raw
    assert "\x07" not in reason
    assert len(reason) < 400  # a long name is shortened in the reason


def test_a_long_reserved_name_is_ignored_not_refused() -> None:
    """A partner may send back one of our receipts: receipt_<name>.txt is longer
    than any landed file's name may be."""
    receipt = "receipt_" + "a" * MAX_NAME_BYTES + ".txt"
    verdict = select_attachments(message("audiences_1.csv", receipt), "audiences_*.csv")
    assert verdict.is_accepted
    assert verdict.ignored == (receipt,)
