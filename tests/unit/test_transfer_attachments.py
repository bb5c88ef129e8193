"""Email attachment rules and file name sanitising (transfer/attachments.py)."""

from __future__ import annotations

from email.message import EmailMessage

import pytest

from connectors.transfer.attachments import (
    MAX_PARTS,
    sanitize_filename,
    select_attachments,
)


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
        ("a\x00b\r\n.csv", "ab.csv"),
        ("..", None),
        (".hidden.csv", None),
        ("dir/", None),
        ("", None),
        (None, None),
        ("x" * 300, None),
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
