#!/usr/bin/env python3
"""Benchmark pypiproxy against a static nginx index (direct) and against peers.

    python3 benchmarks/run.py                  # direct nginx + pypiproxy
    python3 benchmarks/run.py --peers          # + devpi-server and proxpi
    python3 benchmarks/run.py --quick          # smoke run: 1 run, 50 MB big file
    python3 benchmarks/run.py --only install pages --runs 5 --json out.json

Everything it starts (nginx, proxies, relays, load generators) runs in its own
process group and is stopped on exit, on errors and on Ctrl-C.  Only loopback
addresses are used.  This file is the command line only; the modules beside it
do the work (see benchmarks/README.md).

Sections (``--only``):
  install  (1) cold and (2) warm ``uv pip install --no-cache`` of the whole corpus
  bigfile  (3) big file cold: time to first byte, MB/s; (4) big file warm: MB/s
  pages    (5) cached index pages: requests/s and p99 at concurrency 10 and 100
  herd     (6) N clients on the same cold big file: upstream fetches, time, peak RSS
  tiers    (8) uv straight from a remote tier vs through a local tier chained to it,
               over a link of 1, 10 and 50 ms round-trip time (delaying TCP relay)
  expired  (9) a warm local tier behind the slowest --rtts link, every page expired
               (--index-ttl 0) against within its TTL: stale-while-revalidate
  scale    pypiproxy only, on a synthetic index (benchmarks/scale.py), its four sections:
  list     (S1) a cold 750,000-name project list: time, slowest /+health meanwhile, RSS
  curves   (S2) pages of 100/1,000/10,000 files; start-up with caches of 1k-200k files
  logging  (S3) a warm page's rate with the default logging and with --access-log
  accel    (S4) a cached big file: nginx alone, nginx + --accel-redirect, pypiproxy alone
The peak RSS of each proxy over the whole run (7) is always reported.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path

from bench import Bench
from common import log
from report import report
from sections import GROUPS, SECTIONS
from targets import ALL_TARGETS, PEERS
from venvs import BASELINE, REPO


def default_data_dir() -> Path:
    """$XDG_CACHE_HOME/pypiproxy-bench, else ~/.cache/pypiproxy-bench."""
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "pypiproxy-bench"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default=str(default_data_dir()),
                   help="corpus and virtualenvs, kept between runs (never inside the repo) "
                        "[$XDG_CACHE_HOME/pypiproxy-bench, else ~/.cache/pypiproxy-bench: %(default)s]")
    p.add_argument("--peers", action="store_true", help="also run devpi-server and proxpi")
    p.add_argument("--tree", default=str(REPO),
                   help="the pypiproxy source tree to measure, e.g. another checkout for a before/after [%(default)s]")
    p.add_argument("--baseline-tree", metavar="DIR",
                   help="another pypiproxy tree measured beside --tree in the same run, as the target "
                        "pypiproxy-base (its runs alternate with the others'): a before/after")
    p.add_argument("--targets", nargs="+", choices=ALL_TARGETS,
                   help="explicit list of targets (default: direct pypiproxy [+ peers])")
    p.add_argument("--runs", type=int, help="runs per measurement, the median is reported [3; --quick: 1]")
    p.add_argument("--only", nargs="+", choices=list(SECTIONS) + list(GROUPS), metavar="SECTION",
                   help="run only these sections: %s" % " ".join(list(SECTIONS) + list(GROUPS)))
    p.add_argument("--json", help="write the results as JSON to this file")
    p.add_argument("--quick", action="store_true", help="fast smoke run: 1 run, 50 MiB big file, short load runs")
    p.add_argument("--big-mib", type=int, help="size of the generated big wheel in MiB [512; --quick: 50]")
    p.add_argument("--accel-mib", type=int, help="size of the big file of the accel section in MiB [274; --quick: 100]")
    p.add_argument("--duration", type=int, help="seconds per load run for index pages [5; --quick: 2]")
    p.add_argument("--concurrency", type=int, nargs="+", default=[10, 100])
    p.add_argument("--wrk-threads", type=int)
    p.add_argument("--herd-clients", type=int, default=20)
    p.add_argument("--herd-rate", type=float, default=100.0,
                   help="MB/s per connection the upstream sends the big file at in the herd section, "
                        "like a real uplink (0: unlimited) [%(default)s]")
    p.add_argument("--herd-cap", type=float, default=60.0,
                   help="a target whose herd run takes longer than this many seconds is run once [%(default)s]")
    p.add_argument("--rtts", type=float, nargs="+", help="link RTTs in ms for the tiers section [1 10 50]")
    p.add_argument("--python", default=sys.executable, help="interpreter uv installs for [%(default)s]")
    p.add_argument("--uv", help="uv binary (default: on PATH, else installed into DATA_DIR/venvs/tools)")
    p.add_argument("--install-timeout", type=int, default=600)
    p.add_argument("--keep", action="store_true", help="keep the temp dirs (logs, caches)")
    a = p.parse_args(argv)
    a.runs = a.runs or (1 if a.quick else 3)
    a.big_mib = a.big_mib or (50 if a.quick else 512)
    a.accel_mib = a.accel_mib or (100 if a.quick else 274)
    a.only = [name for group in a.only for name in GROUPS.get(group, (group,))] if a.only else list(SECTIONS)
    a.duration = a.duration or (2 if a.quick else 5)
    a.rtts = a.rtts or ([10.0] if a.quick else [1.0, 10.0, 50.0])
    a.rtts = [int(r) if r == int(r) else r for r in a.rtts]
    if not a.targets:
        a.targets = ["direct", "pypiproxy"] + (list(PEERS) if a.peers else [])
    elif "direct" not in a.targets:
        a.targets = ["direct"] + a.targets
    if a.baseline_tree and BASELINE not in a.targets:
        a.targets.append(BASELINE)
    if Path(a.data_dir).resolve().is_relative_to(REPO):
        p.error("--data-dir must not be inside the repository")
    return a


def main(argv=None):
    args = parse_args(argv)

    def on_signal(signum, _frame):
        raise KeyboardInterrupt("signal %d" % signum)

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)
    bench = Bench(args)
    t0 = time.monotonic()
    try:
        bench.setup()
        for name, section in SECTIONS.items():
            if name in args.only:
                section(bench)
        bench.finish_metrics()
    except KeyboardInterrupt:
        log("interrupted; stopping everything")
        bench.cleanup()
        return 130
    finally:
        bench.results["meta"]["elapsed_s"] = round(time.monotonic() - t0, 1)
        if args.json:
            Path(args.json).write_text(json.dumps(bench.results, indent=2, default=str))
        bench.cleanup()
    names = [t.name for t in bench.targets] or args.targets
    print(report(bench.results, names, args.concurrency, args.herd_clients))
    if args.json:
        log("JSON written to %s" % args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
