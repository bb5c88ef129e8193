"""`connectors validate FILE|DIR ...`: check manifests offline, for GitOps pipelines.

It applies exactly the checks of the CRD schema and its CEL rules (the same
pydantic models and Rule objects generate both), and what the operator checks
beyond them, by calling the operator's own functions: a cron schedule's ranges,
a partner's public keys, a Credential that fits its Connection, and usernames
that two Connections of one listener would share. One line per problem:

    FILE:LINE: Kind/name: field.path: message

and, when all is well, one summary line: `N files, M resources: valid`.

A `credentialRef` to a Credential in none of the files is a warning (fatal with
--strict); with --cluster the Credential, and the Connections already there, are
read from the live namespace through the kubeconfig.

Exit status: 0 when all is well, 1 when anything is wrong, 2 when a file (or, with
--cluster, the cluster) cannot be read: each such file gets one line on stderr
saying why, and the readable files are still checked. It prints names of fields,
never values, so no secret can leak into CI logs.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from .checks import ERROR, WARNING, Parsed, Problem, check_document
from .documents import Unreadable, load_documents, manifest_files
from .relations import Snapshot, check_relations

__all__ = ["Problem", "Report", "Unreadable", "add_arguments", "check_paths", "run",
           "validate_paths"]


@dataclass
class Report:
    problems: list[Problem]
    unreadable: list[Unreadable]
    files: int = 0
    resources: list[Parsed] = field(default_factory=list)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == ERROR]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == WARNING]


def read_paths(targets: Iterable[Path], default_namespace: str = "default") -> Report:
    """Every readable file's documents checked one by one; one Unreadable per file
    that is not readable."""
    report = Report([], [])
    for path in manifest_files(targets):
        report.files += 1
        try:
            documents = load_documents(path)
        except Unreadable as error:
            report.unreadable.append(error)
            continue
        for doc in documents:
            parsed, found = check_document(doc, default_namespace)
            report.problems += found
            if parsed is not None:
                report.resources.append(parsed)
    return report


def check_paths(targets: Iterable[Path], live: Snapshot | None = None,
                default_namespace: str = "default") -> Report:
    """The problems of every readable file, and one Unreadable per file that is not."""
    return finish(read_paths(targets, default_namespace), live)


def finish(report: Report, live: Snapshot | None) -> Report:
    """Adds the problems between objects (and with the live ones) to `report`."""
    if not report.unreadable:
        # A Credential may be in a file that could not be read: then "no Credential
        # named ..." would be a guess, not a finding.
        report.problems += check_relations(report.resources, live)
    report.problems.sort()
    return report


def validate_paths(targets: Iterable[Path]) -> list[Problem]:
    """All problems in the given files and folders; raises the first Unreadable."""
    report = check_paths(targets)
    if report.unreadable:
        raise report.unreadable[0]
    return report.problems


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", type=Path, metavar="FILE|DIR",
                        help="manifests to check; folders are searched for *.yaml and *.yml")
    parser.add_argument("--strict", action="store_true",
                        help="treat warnings (a Credential in none of the files) as problems")
    parser.add_argument("--cluster", action="store_true",
                        help="look up what the files do not hold (Credentials, the Connections "
                             "already there) in the live cluster of the kubeconfig")
    parser.add_argument("--kubeconfig", help="with --cluster: the kubeconfig file "
                                             "(default: KUBECONFIG or ~/.kube/config)")
    parser.add_argument("--context", help="with --cluster: the kubeconfig context to use")
    parser.add_argument("-n", "--namespace",
                        help="the namespace of manifests that name none (default: the "
                             "context's namespace with --cluster, else default)")


def run(args: argparse.Namespace) -> int:
    live = None
    if args.cluster:
        # Imported here: without --cluster the validator needs no Kubernetes client.
        from .cluster import ClusterUnreadable, context_namespace, read_snapshot
        try:
            namespace = args.namespace or context_namespace(args.kubeconfig, args.context)
            report = read_paths(args.paths, namespace)
            live = read_snapshot({p.namespace for p in report.resources}, args.kubeconfig,
                                 args.context)
        except ClusterUnreadable as error:
            print(f"--cluster: {error}", file=sys.stderr)
            return 2
    else:
        report = read_paths(args.paths, args.namespace or "default")
    finish(report, live)
    for problem in report.problems:
        print(problem)
    for unreadable in report.unreadable:
        print(unreadable, file=sys.stderr)
    if report.unreadable:
        return 2
    if report.errors or (args.strict and report.warnings):
        return 1
    print(summary(report))
    return 0


def summary(report: Report) -> str:
    warned = len(report.warnings)
    tail = f", {warned} warning{'s' if warned != 1 else ''}" if warned else ""
    return (f"{report.files} file{'s' if report.files != 1 else ''}, "
            f"{len(report.resources)} resource{'s' if len(report.resources) != 1 else ''}: "
            f"valid{tail}")
