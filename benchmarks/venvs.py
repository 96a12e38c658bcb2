"""The virtualenvs under DATA_DIR/venvs: uv (when not on PATH), pypiproxy built
from the repo this benchmark lives in, and the peers (devpi, proxpi) from the
package registry.  Each is reused while what it was made from is unchanged."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

from common import log
from processes import Processes

# The repo this benchmark lives in (benchmarks/..): the pypiproxy measured.
REPO = Path(__file__).resolve().parent.parent
# pypiproxy built from --baseline-tree, measured beside it in the same run: a before/after.
BASELINE = "pypiproxy-base"

PEER_PACKAGES = {
    "devpi": ("devpi-server==6.20.3", "devpi-client==7.3.0"),
    "proxpi": ("proxpi==1.3.1", "gunicorn==27.0.1"),
}


def ensure_venv(path: Path, packages, procs: Processes, marker_extra="") -> Path:
    """A virtualenv with packages from the package registry (pip's ordinary
    client, no machine-wide config); reused while the spec is unchanged."""
    packages = list(packages)
    marker = path / ".bench-spec"
    spec = json.dumps([packages, marker_extra, sys.version])
    if marker.exists() and marker.read_text() == spec:
        return path
    if path.exists():
        shutil.rmtree(path)
    log("creating venv %s: %s" % (path, " ".join(packages)))
    procs.run([sys.executable, "-m", "venv", path])
    procs.run([path / "bin/python", "-m", "pip", "install", "-q", "--disable-pip-version-check"] + packages,
              timeout=1800)
    marker.write_text(spec)
    return path


class Venvs:
    """The virtualenvs of one run: data is DATA_DIR, tmp a scratch dir (tmpfs),
    meta the run's metadata."""

    def __init__(self, data: Path, tmp: Path, procs: Processes, meta: dict, tree: Path = REPO,
                 baseline: Path | None = None):
        self.data, self.tmp, self.procs = data, tmp, procs
        self.tree = tree  # the pypiproxy source measured: this repo, or another checkout
        self.baseline = baseline  # another tree measured beside it, as BASELINE
        self._built: dict[str, Path] = {}
        self.meta = meta  # gets what was measured: pypiproxy's source hash and git HEAD

    def uv(self) -> str:
        """uv on PATH, else installed into DATA_DIR/venvs/tools."""
        cand = shutil.which("uv")
        if cand:
            return cand
        venv = ensure_venv(self.data / "venvs" / "tools", ["uv"], self.procs)
        return str(venv / "bin/uv")

    def peer(self, name: str) -> Path:
        return ensure_venv(self.data / "venvs" / name, PEER_PACKAGES[name], self.procs)

    def pypiproxy(self, name: str = "pypiproxy") -> Path:
        """A non-editable install of the tree (this repo unless told; the baseline tree for
        BASELINE), in a venv of that name. The tree is copied first so that the
        build leaves nothing in it."""
        if name in self._built:
            return self._built[name]
        tree = self.baseline if name == BASELINE else self.tree
        venv = self.data / "venvs" / name
        src = self.tmp / f"{name}-src"
        shutil.copytree(tree, src, ignore=shutil.ignore_patterns(
            ".git", "build", "dist", "*.egg-info", "__pycache__", ".venv", "venv", "benchmarks"))
        h = hashlib.sha256()
        for f in sorted(src.rglob("*")):
            if f.is_file():
                h.update(str(f.relative_to(src)).encode() + b"\0" + f.read_bytes())
        self.meta[f"{name}_source_sha256"] = h.hexdigest()[:16]
        head = subprocess.run(["git", "-C", str(tree), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True)
        self.meta[f"{name}_git_head"] = head.stdout.strip() or None
        ensure_venv(venv, ["setuptools>=68", "wheel"], self.procs, marker_extra="base")
        log("installing %s from %s (non-editable)" % (name, tree))
        pip = [venv / "bin/python", "-m", "pip", "--disable-pip-version-check"]
        wheels = self.tmp / f"{name}-wheel"
        self.procs.run(pip + ["wheel", "-q", "--no-deps", "-w", wheels, src], timeout=600)
        whl = next(wheels.glob("*.whl"))
        self.procs.run(pip + ["install", "-q", whl], timeout=1800)  # dependencies, fetched the first time only
        self.procs.run(pip + ["install", "-q", "--force-reinstall", "--no-deps", whl], timeout=600)
        self._built[name] = venv
        return venv
