"""`kubectl connectors`: the kubectl plugin of the Connectors operator.

    kubectl connectors handoff NAME [-n NS] [--reveal] [-o json]
    kubectl connectors status [-n NS | -A] [-o json]
    kubectl connectors submissions CONNECTION [-n NS] [--failed] [--id N] [--limit N] [-o json]

Installed as the executable `kubectl-connectors` with the package, which is all
kubectl needs to find it on PATH. It reads the cluster of the kubeconfig
(KUBECONFIG, or ~/.kube/config; --kubeconfig and --context override).
"""

from __future__ import annotations

import argparse
import sys

from kubernetes.client.exceptions import ApiException
from kubernetes.config import ConfigException
from urllib3.exceptions import HTTPError

from ..controller.kube import Kube, current_namespace, load_api_client
from . import facts as handoff
from . import processor, table
from .cluster import Cluster, PluginError


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kubectl connectors",
                                     description=(__doc__ or "").splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    hand = commands.add_parser(
        "handoff", help="print what a partner needs for one Connection",
        description="Print what a partner needs for one Connection: where to connect, as "
                    "whom, which files, which keys to trust. The password or private key "
                    "only with --reveal, which records the time and user in the Credential's "
                    "status and an Event.")
    hand.add_argument("name", help="the Connection")
    hand.add_argument("--reveal", action="store_true",
                      help="also print the password or private key, and record that it was "
                           "shown")
    status = commands.add_parser(
        "status", help="one table of every Connection: Ready, reason, last transfer",
        description="One table of every Connection of the namespace (or all, with -A): "
                    "Ready, its reason, and the last transfer.")
    status.add_argument("-A", "--all-namespaces", action="store_true",
                        help="every namespace")
    history = commands.add_parser(
        "submissions", help="the files a Connection received and how their check went",
        description="The submission history of one Connection: the files it received, "
                    "newest first, with their check's status and row counts, or one file in "
                    "full with its errors. Runs `connectors submissions` in the namespace's "
                    "processor pod, which reads the history on the data volume (the exec API: "
                    "needs `create` on pods/exec).")
    history.add_argument("connection", help="the Connection")
    history.add_argument("--failed", action="store_true",
                         help="only Failed files and those with rejected rows")
    history.add_argument("--id", type=int, dest="submission_id", metavar="N",
                         help="one submission in full, with its stored errors")
    history.add_argument("--limit", type=_positive, metavar="N",
                         help="the newest N submissions (default: 20)")
    for sub in (hand, status, history):
        sub.add_argument("-n", "--namespace", help="default: the kubeconfig context's")
        sub.add_argument("-o", "--output", choices=("text", "json"), default="text")
        sub.add_argument("--kubeconfig", help="default: KUBECONFIG or ~/.kube/config")
        sub.add_argument("--context", help="the kubeconfig context to use")
    return parser


def run_handoff(cluster: Cluster, namespace: str, args: argparse.Namespace) -> str:
    connection = cluster.connection(namespace, args.name)
    credential = cluster.credential(connection)
    facts = handoff.handoff_facts(connection, credential, cluster.listener_keys(connection))
    if args.reveal:
        if credential is None:
            raise PluginError("the Connection's Credential does not exist: nothing to reveal")
        value = cluster.reveal(credential, args.name)
        facts = handoff.with_secret(facts, handoff.secret_fact(credential, value))
    if args.output == "json":
        return handoff.render_json(facts)
    return handoff.render_text(facts)


def run_status(cluster: Cluster, namespace: str, args: argparse.Namespace) -> str:
    rows = table.rows(cluster.connections([] if args.all_namespaces else [namespace]))
    if args.output == "json":
        return table.render_json(rows)
    if not rows:
        return "no Connections" + ("" if args.all_namespaces else f" in namespace {namespace}")
    return table.render_text(rows, with_namespace=args.all_namespaces)


def run_submissions(cluster: Cluster, namespace: str, args: argparse.Namespace) -> int:
    """The command's output as it comes, and its exit status."""
    pod = cluster.processor_pod(namespace)
    argv = processor.command(args.connection, failed=args.failed,
                             submission_id=args.submission_id, limit=args.limit,
                             json_output=args.output == "json")
    sys.stdout.flush()
    return cluster.exec_in(pod, argv, sys.stdout.buffer, sys.stderr.buffer)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    try:
        namespace = args.namespace or current_namespace(args.kubeconfig, args.context)
        cluster = Cluster(Kube(load_api_client(args.kubeconfig, args.context)))
        if args.command == "submissions":
            return run_submissions(cluster, namespace, args)
        runner = run_handoff if args.command == "handoff" else run_status
        print(runner(cluster, namespace, args))
    except PluginError as error:
        print(f"kubectl connectors: {error}", file=sys.stderr)
        return 1
    except ApiException as error:
        print(f"kubectl connectors: the API server refused: HTTP {error.status} "
              f"{error.reason}", file=sys.stderr)
        return 1
    except ConfigException as error:
        print(f"kubectl connectors: cannot read the kubeconfig: {error}", file=sys.stderr)
        return 1
    except (HTTPError, OSError) as error:
        print(f"kubectl connectors: cannot reach the cluster: {error}", file=sys.stderr)
        return 1
    return 0
