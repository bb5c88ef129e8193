"""`connectors submissions`: a Connection's submission history, from the store on
the data volume (run in the processor's pod; `kubectl connectors submissions`
runs it there).

It only reads: a data root without a store is an error, never a new empty store.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from pathlib import Path

from ..options import env_option
from . import listing
from .store import SubmissionStore, store_path


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {value}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--connection", required=True, metavar="NAME",
                        help="the Connection whose submissions to list")
    parser.add_argument("--failed", action="store_true",
                        help="only those to look at: Failed, or Complete with rejected rows")
    parser.add_argument("--id", type=int, dest="submission_id", metavar="N",
                        help="one submission in full, with its stored errors")
    parser.add_argument("--limit", type=_positive, default=20, metavar="N",
                        help="the newest N submissions (default: 20)")
    env_option(parser, "--data", env="CONNECTORS_DATA_ROOT", type=Path, default=Path("/data"),
               metavar="DIR", help="root of the data volume, which holds the store")
    parser.add_argument("-o", "--output", choices=("table", "json"), default="table")


def run(args: argparse.Namespace) -> int:
    path = store_path(args.data)
    if not path.is_file():
        print(f"connectors submissions: no submission store at {path}: either no file has "
              f"been checked yet in this namespace, or {args.data} is not the data volume "
              "(set --data or CONNECTORS_DATA_ROOT)", file=sys.stderr)
        return 1
    try:
        with SubmissionStore(path) as store:
            if args.submission_id is not None:
                return _one(store, args)
            summary = store.summaries(args.connection).get(args.connection)
            found = store.history(args.connection, failed_only=args.failed, limit=args.limit)
    except (sqlite3.Error, RuntimeError) as error:
        print(f"connectors submissions: cannot read the submission store {path}: {error}",
              file=sys.stderr)
        return 1
    if args.output == "json":
        print(json.dumps(listing.history_dict(args.connection, summary, found,
                                              failed_only=args.failed), indent=2))
    else:
        print(listing.history_text(args.connection, summary, found, failed_only=args.failed))
    return 0


def _one(store: SubmissionStore, args: argparse.Namespace) -> int:
    submission = store.get(args.submission_id)
    # Another Connection's submission is not shown under this one's name.
    if submission is None or submission.connection != args.connection:
        print(f"connectors submissions: Connection {args.connection} has no submission "
              f"{args.submission_id}", file=sys.stderr)
        return 1
    if args.output == "json":
        print(json.dumps(listing.submission_dict(submission, with_errors=True), indent=2))
    else:
        print(listing.detail_text(submission))
    return 0
