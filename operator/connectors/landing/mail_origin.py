"""Where a file that came by email came from: the envelope sender, the message's
Message-ID and subject, kept beside the landing area under the file's trace id
(`.connectors/mail/<trace id>.json`), so that the processor can answer the
sender with the result (spec.email.replyWithResults).

Apart from the receipt on purpose: the receipt is the partner's record of what
landed; this is the platform's note of whom to answer, which the partner does
not see (hidden folder) and which nothing else reads.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from .names import INTERNAL_DIR

MAIL_DIR = "mail"


@dataclass(frozen=True)
class MailOrigin:
    sender: str
    message_id: str | None = None
    subject: str | None = None


def origin_path(home: Path, trace_id: str) -> Path:
    return home / INTERNAL_DIR / MAIL_DIR / f"{trace_id}.json"


def write_origin(home: Path, trace_id: str, origin: MailOrigin) -> None:
    """Written after the file landed; a lost note only means no reply."""
    path = origin_path(home, trace_id)
    path.parent.mkdir(mode=0o750, parents=True, exist_ok=True)
    temp = path.with_suffix(".tmp")
    temp.write_text(json.dumps(asdict(origin)))
    os.replace(temp, path)


def read_origin(home: Path, trace_id: str) -> MailOrigin | None:
    try:
        data = json.loads(origin_path(home, trace_id).read_text())
        return MailOrigin(str(data["sender"]), data.get("message_id"), data.get("subject"))
    except (OSError, ValueError, KeyError, TypeError):
        return None
