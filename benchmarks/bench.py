"""One run of the benchmark: sets up the corpus, nginx, the clients and the
targets, records what the sections measure, and stops everything at the end."""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from clients import Clients
from common import log, median
from corpus import BIG_PROJECT, build_corpus
from nginx import Nginx
from processes import Processes
from targets import TARGET_CLASSES, Lab, Target
from venvs import Venvs


class Bench:
    def __init__(self, args):
        self.args = args
        self.data = Path(args.data_dir).resolve()
        self.data.mkdir(parents=True, exist_ok=True)
        # Logs, caches, install targets and the clients' temp files all live on
        # tmpfs: uv --no-cache unpacks into TMPDIR, and this machine's disk makes
        # that 4x slower and very noisy.
        self.shm = Path(tempfile.mkdtemp(prefix="pypiproxy-bench-", dir="/dev/shm"
                                         if os.path.isdir("/dev/shm") else None))
        self.work = self.shm
        (self.shm / "tmp").mkdir()
        self.procs = Processes(tmpdir=self.shm / "tmp")
        self.big_sha256 = None
        self.results: dict = {"meta": {}, "metrics": {}, "runs": {}, "tiers": {}, "scale": {}, "errors": []}
        self.venvs = Venvs(self.data, self.shm, self.procs, meta=self.results["meta"], tree=Path(args.tree),
                           baseline=Path(args.baseline_tree) if args.baseline_tree else None)
        self.nginx = None
        self.lab = None
        self.clients = None
        self.corpus = None
        self.targets: list[Target] = []

    # ---- setup

    def setup(self):
        a = self.args
        uv = a.uv or self.venvs.uv()
        self.clients = Clients(self.procs, self.shm, uv, a.python, a.install_timeout, a.wrk_threads)
        uv_version = self.procs.run([uv, "--version"]).stdout.decode().strip()
        self.corpus = build_corpus(self.data, a.big_mib, self.procs)
        log("corpus: %d distributions (%d sdists), %.0f MB; big file %s (%.0f MB)" % (
            self.corpus["n_dists"], self.corpus["n_sdists"], self.corpus["corpus_bytes"] / 1e6,
            self.corpus["big_name"], self.corpus["big_size"] / 1e6))
        self.nginx = Nginx(self.corpus["dir"], self.work, self.procs, a.herd_rate)
        self.nginx.start()
        self.lab = Lab(self.procs, self.nginx, self.venvs, self.work)
        self.results["meta"].update({
            "date": time.strftime("%Y-%m-%d %H:%M:%S"), "python": sys.version.split()[0],
            "uv": uv_version, "nproc": os.cpu_count(), "runs": a.runs, "quick": a.quick,
            "n_dists": self.corpus["n_dists"], "n_sdists": self.corpus["n_sdists"],
            "corpus_mb": round(self.corpus["corpus_bytes"] / 1e6, 1),
            "big_file": self.corpus["big_name"], "big_mb": round(self.corpus["big_size"] / 1e6, 1),
            "load_generator": "wrk" if self.clients.wrk else "builtin", "targets": a.targets,
            "herd_clients": a.herd_clients, "herd_rate_mb_s": a.herd_rate, "rtts_ms": a.rtts,
        })
        for name in a.targets:
            t = TARGET_CLASSES[name](self.lab)
            try:
                t.prepare()
                t.reset()
            except Exception as e:  # noqa: BLE001 - a target that fails is reported, the rest goes on
                self.fail(t, "setup", e)
                with contextlib.suppress(Exception):
                    t.stop()
                continue
            self.targets.append(t)
            log("target %s ready at %s" % (t.name, t.index_url))

    def fail(self, target, section, exc):
        msg = "%s: %s: %s" % (target.name if target else "-", section, str(exc).strip()[-2000:])
        log("ERROR " + msg)
        tail = ""
        if target is not None and target.logfile().exists():
            tail = target.logfile().read_text(errors="replace")[-2000:]
        self.results["errors"].append({"target": target.name if target else None,
                                       "section": section, "error": str(exc)[-4000:],
                                       "server_log_tail": tail})

    def cleanup(self):
        for t in self.targets:
            with contextlib.suppress(Exception):
                t.stop()
        if self.nginx:
            with contextlib.suppress(Exception):
                self.nginx.stop()
        self.procs.stop_all()
        if self.args.keep:
            log("kept %s" % self.shm)
        else:
            shutil.rmtree(self.shm, ignore_errors=True)

    # ---- recording

    def record(self, target, metric, value):
        self.results["runs"].setdefault(metric, {}).setdefault(target.name, []).append(value)

    def finish_metrics(self):
        for metric, per in self.results["runs"].items():
            for tname, vals in per.items():
                self.results["metrics"].setdefault(metric, {})[tname] = median(vals)
        for t in self.targets:
            t.stop()
            self.results["metrics"].setdefault("peak_rss_mb", {})[t.name] = round(t.peak_rss_mb, 1)

    # ---- shortcuts for the sections

    def uv_install(self, index_url: str, label: str) -> float | None:
        return self.clients.uv_install(index_url, self.corpus["requirements"], label)

    def big_url(self, t: Target) -> str:
        return self.clients.file_url(t.index_url, BIG_PROJECT, self.corpus["big_name"])
