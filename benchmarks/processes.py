"""Processes the benchmark starts, and the memory of a process tree.

A `Processes` object is made once per run and passed to whatever starts a
process: each process runs in its own process group, is remembered, and
`stop_all()` stops every one still running (on exit, on errors, on Ctrl-C).
It also holds the environment every client and server runs with.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from pathlib import Path


def clean_env(tmpdir: Path | None = None, **extra) -> dict:
    """The environment every client and server runs with: no PIP_*/UV_*
    variables, no machine-wide pip config, no proxies for loopback; TMPDIR
    set to tmpdir when given."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PIP_", "UV_")) and k.lower() not in (
               "http_proxy", "https_proxy", "all_proxy", "virtual_env")}
    env["PIP_CONFIG_FILE"] = "/dev/null"
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    env["PYTHONUNBUFFERED"] = "1"
    if tmpdir:
        env["TMPDIR"] = str(tmpdir)
    env.update(extra)
    return env


class Processes:
    """The process groups of one benchmark run."""

    def __init__(self, tmpdir: Path | None = None):
        # The clients' and servers' TMPDIR: a tmpfs dir, the disk here is far slower.
        self.tmpdir = tmpdir
        self.running: list[subprocess.Popen] = []

    def env(self, **extra) -> dict:
        return clean_env(self.tmpdir, **extra)

    def start(self, argv, log_path=None, env=None, cwd=None) -> subprocess.Popen:
        out = open(log_path, "ab") if log_path else subprocess.DEVNULL
        p = subprocess.Popen([str(a) for a in argv], stdout=out, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL, env=env or self.env(), cwd=cwd,
                             start_new_session=True)
        if log_path:
            out.close()
        self.running.append(p)
        return p

    def stop(self, p: subprocess.Popen, sig=signal.SIGTERM, timeout=15):
        if p is None:
            return
        if p.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, sig)  # its own process group (start_new_session)
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGKILL)
                p.wait(10)
        # leftovers of the group (e.g. gunicorn workers)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(p.pid, signal.SIGKILL)
        if p in self.running:
            self.running.remove(p)

    def stop_all(self):
        for p in list(reversed(self.running)):
            with contextlib.suppress(Exception):
                self.stop(p, timeout=5)

    def run(self, argv, env=None, check=True, timeout=None, quiet=True, cwd=None):
        """Run a command to its end (in its own session), raise if it fails."""
        r = subprocess.run([str(a) for a in argv], env=env or self.env(), cwd=cwd,
                           stdout=subprocess.PIPE if quiet else None,
                           stderr=subprocess.STDOUT if quiet else None,
                           stdin=subprocess.DEVNULL, timeout=timeout, start_new_session=True)
        if check and r.returncode != 0:
            out = r.stdout.decode(errors="replace")[-3000:] if quiet else ""
            raise RuntimeError("command failed (%s): %s\n%s" % (r.returncode, " ".join(map(str, argv)), out))
        return r


# --------------------------------------------------------------------------
# process tree memory


def _ppid_map() -> dict[int, int]:
    m = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open("/proc/%s/stat" % d, "rb") as f:
                    s = f.read()
                m[int(d)] = int(s[s.rindex(b")") + 2:].split()[1])
            except (OSError, ValueError, IndexError):
                pass
    return m


def tree_pids(root: int) -> list[int]:
    m = _ppid_map()
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        if p in m or p == root:
            out.append(p)
        todo.extend(c for c, pp in m.items() if pp == p)
    return out


def _status_kb(pid, field) -> int:
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_rss_mb(root, field="VmRSS") -> float:
    """RSS (or, with field="VmHWM", the peak RSS) of a process and its descendants."""
    return sum(_status_kb(p, field) for p in tree_pids(root)) / 1024.0


def reset_peak(root):
    for p in tree_pids(root):
        with contextlib.suppress(OSError):
            with open("/proc/%d/clear_refs" % p, "w") as f:
                f.write("5")  # resets VmHWM to the current RSS
