"""What becomes of each checked file besides its result file and report: the
processor's metrics (connectors/metrics/processor.py) and one audit event
(connectors/logs.py)."""

from __future__ import annotations

import logging

from ..logs import audit
from ..metrics import processor as metrics
from ..submissions import Submission
from .work import Checked


def checked(item: Checked, submission: Submission, seconds: float) -> None:
    result = item.result
    metrics.checked(item.connection, result.status, result.rows_accepted, result.rows_rejected,
                    submission.size, seconds)
    clean = result.status == "Complete" and not result.rows_rejected
    audit("check", logging.INFO if clean else logging.WARNING, result=result.status,
          connection=item.connection, file=item.name, size=submission.size,
          sha256=submission.sha256, trace_id=submission.trace_id,
          rows_accepted=result.rows_accepted, rows_rejected=result.rows_rejected,
          reason=result.failure.code if result.failure is not None else "",
          duration_seconds=round(seconds, 3))
