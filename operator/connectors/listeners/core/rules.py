"""What partners may do in their home.

The rules are shared by the three listeners, so that SFTP, FTP and email
refuse the same names with the same words:
- uploads only with the `upload` permission, into the top of the home (the
  landing area is flat: receipts sit beside the files they describe);
- never a hidden name, a reserved name (receipt_*, result_*) or a name outside
  the Connection's filenamePattern;
- a partner sees only what belongs to the Connection: names matching its
  filenamePattern, and receipts and results with `readReceipts`. Anything
  else in the folder (a file the platform keeps beside them) is as if absent;
- downloads with `download`, or of receipts and results with `readReceipts`.
"""

from __future__ import annotations

from connectors.api.accounts import Account
from connectors.landing.area import is_hidden, is_reserved, matches_pattern, name_refusal


class Refusal(str):
    """A refusal in words (what the partner and the events are told), with
    `code`: the same as one bounded word, which the metrics count by."""

    code: str

    def __new__(cls, text: str, code: str) -> Refusal:
        refusal = super().__new__(cls, text)
        refusal.code = code
        return refusal


def refusal_code(reason: str) -> str:
    """The code of a Refusal; "refused" for words without one."""
    return reason.code if isinstance(reason, Refusal) else "refused"


def upload_refusal(account: Account, name: str) -> Refusal | None:
    """Why `name` may not be uploaded by `account`, or None when it may."""
    if "upload" not in account.permissions:
        return Refusal("this account may not upload files", "no_permission")
    reason = name_refusal(name)
    if reason is not None:
        return Refusal(reason, "bad_name")
    if is_hidden(name):
        return Refusal("names starting with '.' are reserved", "hidden_name")
    if is_reserved(name):
        return Refusal("receipt_ and result_ files are written by the platform, not uploaded",
                       "reserved_name")
    if not matches_pattern(name, account.filename_pattern):
        return Refusal(f"{name!r} does not match the filename pattern "
                       f"{account.filename_pattern!r}", "pattern_mismatch")
    return None


def may_see(account: Account, name: str) -> bool:
    """Whether `name` in the account's folder is shown to the partner at all."""
    if is_hidden(name):
        return False
    if is_reserved(name):
        return "readReceipts" in account.permissions
    return matches_pattern(name, account.filename_pattern)


def may_read(account: Account, name: str) -> bool:
    """Whether the account may download the file named `name`."""
    if not may_see(account, name):
        return False
    if "download" in account.permissions:
        return True
    return "readReceipts" in account.permissions and is_reserved(name)


def may_list(account: Account) -> bool:
    return "list" in account.permissions
