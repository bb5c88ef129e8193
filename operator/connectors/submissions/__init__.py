"""Submissions: every landed file of an Inbound Connection, checked against its
data type's schema, answered with a result file, and kept in a history.

Pure of Kubernetes: listeners, jobs and a processor call it (the import
contracts keep kopf, kubernetes, listeners and jobs out).

- schema.py, builtin.py: the declarative schema, and one per data type;
- check.py (with reading.py, header.py, columns.py, groups.py): the checker;
- outcome.py: what a check finds; results.py: the result file;
- store.py: the SQLite history, with claims for exactly-once processing, and the
  deliveries of accepted files to sinks (connectors.sinks delivers them).
"""

from ..api.file_schema import Column, FileRule, FileSchema
from .builtin import BUILTIN, schema_for
from .check import CheckSettings, check_file
from .outcome import CheckError, CheckResult
from .reading import ReadLimits
from .results import render_result, result_file_name
from .store import (
    Claim,
    DeliveryClaim,
    DeliveryRecord,
    Submission,
    SubmissionStore,
    Summary,
    store_path,
)

__all__ = [
    "BUILTIN",
    "CheckError",
    "CheckResult",
    "CheckSettings",
    "Claim",
    "Column",
    "DeliveryClaim",
    "DeliveryRecord",
    "FileRule",
    "FileSchema",
    "ReadLimits",
    "Submission",
    "SubmissionStore",
    "Summary",
    "check_file",
    "render_result",
    "result_file_name",
    "schema_for",
    "store_path",
]
