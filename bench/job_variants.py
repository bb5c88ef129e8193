"""The SFTP pull job alone, in variants that take turns, for comparing changes.

Starts a local OpenSSH sshd with 1,000 files of 10 KB (bench/transfer.py's
small set), mounts the same fresh journaled ext4 for the landing, and runs
`connectors transfer` once per variant per round, in turn, so that the
machine's swings fall on every variant alike. A variant is a set of
environment assignments; to compare two versions of the code, give each a
PYTHONPATH to its own copy of `operator/`:

    git archive HEAD operator | tar -x -C /tmp/old
    cp -r operator /tmp/new/
    python bench/job_variants.py --rounds 10 \\
        PYTHONPATH=/tmp/old/operator PYTHONPATH=/tmp/new/operator

Prints each run, then per variant the median wall time and the median of the
job's own clock (durationSeconds). Run as root, like bench/transfer.py.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

# bench/transfer.py, beside this file
import transfer as bench


def parse_variant(text: str) -> dict[str, str]:
    """'A=1,B=2' -> {'A': '1', 'B': '2'}; '' -> {} (the environment as it is)."""
    pairs = [item.split("=", 1) for item in text.split(",") if item]
    if any(len(pair) != 2 for pair in pairs):
        raise SystemExit(f"a variant is NAME=VALUE[,NAME=VALUE...], not {text!r}")
    return {name: value for name, value in pairs}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--small", type=int, default=1000)
    parser.add_argument("--files-in-flight", type=int, default=64)
    parser.add_argument("variants", nargs="*", default=[""], help="NAME=VALUE[,NAME=VALUE...]")
    options = parser.parse_args()
    variants = [parse_variant(text) for text in options.variants]
    work = Path(tempfile.mkdtemp(prefix="cx-variants-", dir="/tmp"))
    landing = bench.mount_volume(work, 4)
    sshd = None
    walls: list[list[float]] = [[] for _ in variants]
    inside: list[list[float]] = [[] for _ in variants]
    try:
        sshd, port, host_key, key = bench.start_sshd(work)
        known_hosts = work / "known_hosts"
        known_hosts.write_text(f"[127.0.0.1]:{port} {host_key}\n")
        folder = work / "remote" / "small"
        bench.make_small(folder, options.small)
        for _ in range(options.rounds):
            for index, variant in enumerate(variants):
                saved = dict(os.environ)
                os.environ.update(variant)
                try:
                    elapsed, summary = bench.run_job(
                        port, host_key, key, known_hosts, folder, work, landing,
                        options.files_in_flight,
                    )
                finally:
                    os.environ.clear()
                    os.environ.update(saved)
                assert summary["files"] == options.small, summary
                walls[index].append(elapsed)
                inside[index].append(float(str(summary["durationSeconds"])))
                print(f"{variant or '(as is)'}: {elapsed:.3f} s", flush=True)
        for index, variant in enumerate(variants):
            print(
                f"{variant or '(as is)'}: median {statistics.median(walls[index]):.3f} s, "
                f"job's clock {statistics.median(inside[index]):.3f} s, "
                f"runs {sorted(round(x, 3) for x in walls[index])}"
            )
        return 0
    finally:
        if sshd is not None:
            sshd.terminate()
            sshd.wait(20)
        subprocess.run(["umount", str(landing)], check=False)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
