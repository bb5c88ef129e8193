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


def upload_refusal(account: Account, name: str) -> str | None:
    """Why `name` may not be uploaded by `account`, or None when it may."""
    if "upload" not in account.permissions:
        return "this account may not upload files"
    reason = name_refusal(name)
    if reason is not None:
        return reason
    if is_hidden(name):
        return "names starting with '.' are reserved"
    if is_reserved(name):
        return "receipt_ and result_ files are written by the platform, not uploaded"
    if not matches_pattern(name, account.filename_pattern):
        return f"{name!r} does not match the filename pattern {account.filename_pattern!r}"
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
