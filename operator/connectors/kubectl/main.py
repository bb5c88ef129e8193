"""`kubectl connectors`: the kubectl plugin of the Connectors operator.

    kubectl connectors handoff NAME [-n NS] [--reveal] [-o json]
    kubectl connectors status [-n NS | -A] [-o json]
    kubectl connectors submissions CONNECTION [-n NS] [--failed] [--id N] [--limit N] [-o json]
    kubectl connectors trigger NAME [-n NS] [--follow | --no-follow] [--timeout S] [-o json]
    kubectl connectors rotate NAME [-n NS] [--timeout S] [-o json]

Installed as the executable `kubectl-connectors` with the package, which is all
kubectl needs to find it on PATH. It reads the cluster of the kubeconfig
(KUBECONFIG, or ~/.kube/config; --kubeconfig and --context override).
"""

from __future__ import annotations

import argparse
import datetime
import sys
import time
from collections.abc import Callable

from kubernetes.client.exceptions import ApiException
from kubernetes.config import ConfigException
from urllib3.exceptions import HTTPError

from ..controller.kube import Kube, current_namespace, load_api_client
from . import facts as handoff
from . import processor, rotate, table, trigger
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
    run_now = commands.add_parser(
        "trigger", help="run a platform-initiated Connection's transfer now, and follow it",
        description="Run the transfer of a Connection the platform starts (Inbound Pull, "
                    "Outbound Push) now: a Job made from its CronJob, as kubectl create job "
                    "--from=cronjob/... makes it. By default waits for it to finish and prints "
                    "its outcome (as status.lastTransfer records it); exit status 0 when it "
                    "succeeded, 1 when it failed or did not finish in time.")
    run_now.add_argument("name", help="the Connection")
    run_now.add_argument("--follow", action=argparse.BooleanOptionalAction, default=True,
                         help="wait for the Job to finish and print its outcome (default); "
                              "--no-follow: print the Job's name and return")
    run_now.add_argument("--timeout", type=_positive, default=600, metavar="S",
                         help="with --follow: give up waiting after S seconds (default 600); "
                              "the Job goes on")
    renew = commands.add_parser(
        "rotate", help="a new generated password or key pair for a Credential",
        description="Rotate a Credential's generated password or key pair, as the operator "
                    "does when the annotation connectors.dev/rotate changes; waits until "
                    "status.rotatedAt changes, then says what changed and what to send the "
                    "partner. Not for a Credential whose Secret a third party issued "
                    "(secretRef), nor for a partner's public key.")
    renew.add_argument("name", help="the Credential")
    renew.add_argument("--timeout", type=_positive, default=60, metavar="S",
                       help="give up waiting for the operator after S seconds (default 60)")
    for sub in (hand, status, history, run_now, renew):
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


Sleep = Callable[[float], None]


def note(message: str) -> None:
    """Progress, on stderr: stdout holds only the result (text or JSON)."""
    print(f"kubectl connectors: {message}", file=sys.stderr, flush=True)


def run_trigger(cluster: Cluster, namespace: str, args: argparse.Namespace,
                sleep: Sleep = time.sleep) -> int:
    connection = cluster.connection(namespace, args.name)
    why_not = trigger.refusal(connection)
    if why_not:
        raise PluginError(why_not)
    cronjob = cluster.cronjob(namespace, trigger.cronjob_name(args.name))
    if cronjob is None:
        raise PluginError(trigger.no_cronjob(connection))
    busy = trigger.running(cluster.transfer_jobs(namespace, args.name))
    if busy:
        raise PluginError(f"a transfer of Connection {args.name} is running now (Job "
                          f"{busy[0]}): follow it with kubectl get job {busy[0]} -n "
                          f"{namespace} --watch, and trigger again once it has finished")
    job = cluster.create_job(trigger.manual_job(cronjob, datetime.datetime.now(datetime.UTC)))
    name = str(job["metadata"]["name"])
    outcome = trigger.Outcome(args.name, namespace, name, followed=args.follow)
    if args.follow:
        note(f"Job {name} created from CronJob {cronjob['metadata']['name']}; waiting up to "
             f"{args.timeout} s for it to finish")
        follow(cluster, outcome, args.timeout, sleep)
    print(trigger.render_json(outcome) if args.output == "json"
          else trigger.render_text(outcome))
    return 0 if outcome.succeeded else 1


def follow(cluster: Cluster, outcome: trigger.Outcome, timeout: float, sleep: Sleep,
           record_wait: float = 30.0) -> None:
    """Waits for the Job to finish, then for its summary: the operator's copy in
    status.lastTransfer, or, if the operator does not copy it within `record_wait`
    seconds, the pod's termination message itself."""
    namespace, name = outcome.namespace, outcome.job
    deadline = time.monotonic() + timeout
    seen = ""
    while True:
        job = cluster.job(namespace, name)
        if job is None:
            raise PluginError(f"Job {name} was deleted before it finished")
        outcome.job_state = trigger.finished(job)
        if outcome.job_state:
            break
        pods = cluster.job_pods(namespace, name)
        phases = ", ".join(f"pod {p['metadata']['name']} "
                           f"{(p.get('status') or {}).get('phase', 'Pending')}" for p in pods)
        if phases and phases != seen:
            note(phases)
            seen = phases
        if time.monotonic() >= deadline:
            raise PluginError(f"Job {name} has not finished after {timeout:g} s; it goes on: "
                              f"kubectl get job {name} -n {namespace} --watch, or kubectl "
                              f"connectors status -n {namespace} once it has")
        sleep(1.0)
    record_deadline = time.monotonic() + record_wait
    while True:
        last = trigger.recorded(cluster.connection(namespace, outcome.connection), name)
        if last is not None:
            outcome.last_transfer = {k: last[k] for k in trigger.LAST_TRANSFER_FIELDS
                                     if k in last}
            outcome.source = "status.lastTransfer"
            return
        if time.monotonic() >= record_deadline:
            break
        sleep(1.0)
    from_pods = trigger.from_pods(cluster.job_pods(namespace, name))
    if from_pods is not None:
        outcome.last_transfer = from_pods
        outcome.source = "termination message"
        note("the operator has not recorded this run in status.lastTransfer: is it running? "
             "The outcome below is read from the Job's pod")


def run_rotate(cluster: Cluster, namespace: str, args: argparse.Namespace,
               sleep: Sleep = time.sleep) -> int:
    credential = cluster.credential_named(namespace, args.name)
    why_not = rotate.refusal(credential)
    if why_not:
        raise PluginError(why_not)
    before = credential.get("status") or {}
    previous = before.get("rotatedAt")
    # rotatedAt has whole seconds: a rotation within the second of the previous one
    # would leave it as it was, so the request waits for the next second.
    while previous and previous == datetime.datetime.now(datetime.UTC).strftime(
            "%Y-%m-%dT%H:%M:%SZ"):
        sleep(0.2)
    cluster.request_rotation(credential, rotate.annotation_patch(
        rotate.request_value(datetime.datetime.now(datetime.UTC))))
    note(f"rotation of Credential {args.name} requested; waiting up to {args.timeout} s for "
         "the operator")
    deadline = time.monotonic() + args.timeout
    while True:
        current = cluster.credential_named(namespace, args.name)
        status = current.get("status") or {}
        if status.get("rotatedAt") and status.get("rotatedAt") != previous:
            break
        if time.monotonic() >= deadline:
            problem = rotate.problem(current)
            raise PluginError(
                f"the operator has not rotated Credential {args.name} within {args.timeout} s"
                + (f" ({problem})" if problem else ": is it running?")
                + "; the request stays in its annotation connectors.dev/rotate and is carried "
                "out when the operator next reconciles it")
        sleep(0.5)
    spec = current.get("spec") or {}
    result = rotate.Rotation(
        args.name, namespace, str(spec.get("type")), str(status.get("secretName")),
        str(status["rotatedAt"]), previous,
        fingerprints_before=list(before.get("fingerprints") or []),
        fingerprints_after=list(status.get("fingerprints") or []),
        public_key=status.get("publicKey"),
        connections=cluster.users_of(namespace, args.name))
    print(rotate.render_json(result) if args.output == "json" else rotate.render_text(result))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    try:
        namespace = args.namespace or current_namespace(args.kubeconfig, args.context)
        cluster = Cluster(Kube(load_api_client(args.kubeconfig, args.context)))
        if args.command == "submissions":
            return run_submissions(cluster, namespace, args)
        if args.command == "trigger":
            return run_trigger(cluster, namespace, args)
        if args.command == "rotate":
            return run_rotate(cluster, namespace, args)
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
