"""The corpus: the distributions pip downloads for a fixed set of requirements,
one generated big wheel, and a static PEP 503 index over them.

Kept in DATA_DIR/corpus between runs; downloaded again only when the
requirements change, the index is rewritten every run.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import os
import re
import shutil
import sys
import tarfile
import urllib.parse
import zipfile
from pathlib import Path

from common import log, normalize
from processes import Processes

# A fixed, realistic set of top-level requirements (their dependency trees are
# downloaded too): pure and binary wheels, big binary wheels (scipy, numpy,
# pandas, botocore, mypy) and three sdist-only projects (docopt, wget as .zip,
# sgmllib3k).
CORPUS_REQUIREMENTS = tuple("""
requests==2.34.2
flask==3.1.3
django==5.2.19
fastapi==0.165.0
uvicorn==0.54.0
pydantic==2.14.4
sqlalchemy==2.1.9
numpy==2.4.6
pandas==3.1.1
scipy==1.17.1
matplotlib==3.11.2
pillow==13.0.0
lxml==6.1.3
pyyaml==6.0.4
cryptography==50.0.2
boto3==1.44.8
aiohttp==3.14.5
httpx==0.28.1
click==8.5.1
rich==15.0.0
jinja2==3.1.6
pytest==9.2.0
black==26.10.1
mypy==2.4.1
psycopg2-binary==2.9.13
redis==8.1.0
celery==5.7.0
gunicorn==27.0.1
python-dateutil==2.9.0.post0
tqdm==4.70.1
orjson==3.13.0
protobuf==7.36.2
grpcio==1.85.3
beautifulsoup4==4.15.0
markdown==3.11.3
feedparser==6.0.14
omegaconf==2.4.0
fire==0.7.1
docopt==0.6.2
wget==3.2
sgmllib3k==1.0.0
setuptools==84.2.1
wheel==0.48.0
""".split())

BIG_PROJECT = "bigdata"


def build_corpus(data: Path, big_mib: int, procs: Processes) -> dict:
    """Download (the first time), generate the big wheel, write the index: a dict
    describing the corpus."""
    corpus = data / "corpus"
    files = corpus / "files"
    files.mkdir(parents=True, exist_ok=True)
    stamp = corpus / "downloaded.json"
    want = sorted(CORPUS_REQUIREMENTS)
    if not stamp.exists() or json.loads(stamp.read_text()).get("requirements") != want:
        log("downloading the corpus (pip download of %d requirements + deps) into %s" % (len(want), files))
        req = corpus / "requirements.in"
        req.write_text("\n".join(want) + "\n")
        # The public index through pip's ordinary client, no machine-wide config.
        procs.run([sys.executable, "-m", "pip", "download", "--disable-pip-version-check",
                   "-d", files, "-r", req], timeout=1800)
        stamp.write_text(json.dumps({"requirements": want}))
    big = make_big_wheel(files, big_mib)
    return write_index(corpus, big)


def make_big_wheel(files: Path, mib: int) -> Path:
    """A real wheel: one big stored member of incompressible bytes, valid
    METADATA/WHEEL/RECORD, so uv and pip can read its metadata."""
    version = "1.0.%d" % mib
    name = "%s-%s-py3-none-any.whl" % (BIG_PROJECT, version)
    path = files / name
    if path.exists():
        return path
    log("generating %s (%d MiB)" % (name, mib))
    tmp = path.with_suffix(".tmp")
    di = "%s-%s.dist-info" % (BIG_PROJECT, version)
    record = []

    def rec(arcname, data_hash, size):
        record.append("%s,sha256=%s,%d" % (
            arcname, base64.urlsafe_b64encode(data_hash).rstrip(b"=").decode(), size))

    def add(zf, arcname, text):
        b = text.encode()
        zf.writestr(zipfile.ZipInfo(arcname, (2024, 1, 1, 0, 0, 0)), b)
        rec(arcname, hashlib.sha256(b).digest(), len(b))

    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
        add(zf, "%s/__init__.py" % BIG_PROJECT, '"""A big blob for benchmarks."""\n')
        zi = zipfile.ZipInfo("%s/blob.bin" % BIG_PROJECT, (2024, 1, 1, 0, 0, 0))
        zi.compress_type = zipfile.ZIP_STORED
        h = hashlib.sha256()
        chunk = 4 << 20
        with zf.open(zi, "w", force_zip64=True) as w:
            for _ in range(mib * (1 << 20) // chunk):
                b = os.urandom(chunk)
                h.update(b)
                w.write(b)
        rec(zi.filename, h.digest(), mib << 20)
        add(zf, di + "/METADATA",
            "Metadata-Version: 2.1\nName: %s\nVersion: %s\nSummary: %d MiB of random bytes\n"
            "Requires-Python: >=3.8\n" % (BIG_PROJECT, version, mib))
        add(zf, di + "/WHEEL", "Wheel-Version: 1.0\nGenerator: pypiproxy-bench\n"
            "Root-Is-Purelib: true\nTag: py3-none-any\n")
        record.append(di + "/RECORD,,")
        zf.writestr(zipfile.ZipInfo(di + "/RECORD", (2024, 1, 1, 0, 0, 0)), "\n".join(record) + "\n")
    tmp.rename(path)
    return path


def _dist_name_version(fn: str):
    if fn.endswith(".whl"):
        parts = fn[:-4].split("-")
        return parts[0], parts[1]
    for ext in (".tar.gz", ".zip", ".tar.bz2"):
        if fn.endswith(ext):
            n, v = fn[:-len(ext)].rsplit("-", 1)
            return n, v
    return None, None


def _requires_python(path: Path):
    try:
        if path.name.endswith(".whl"):
            with zipfile.ZipFile(path) as z:
                meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
                text = z.read(meta).decode("utf-8", "replace")
        elif path.name.endswith(".zip"):
            with zipfile.ZipFile(path) as z:
                meta = min((n for n in z.namelist() if n.endswith("PKG-INFO")), key=len)
                text = z.read(meta).decode("utf-8", "replace")
        else:
            with tarfile.open(path) as t:
                meta = min((m for m in t.getmembers() if m.name.endswith("PKG-INFO")), key=lambda m: len(m.name))
                text = t.extractfile(meta).read().decode("utf-8", "replace")
    except (StopIteration, ValueError, OSError, zipfile.BadZipFile, tarfile.TarError):
        return None
    head = text.split("\n\n", 1)[0]
    m = re.search(r"^Requires-Python:\s*(.+)$", head, re.M)
    return m.group(1).strip() if m else None


def write_index(corpus: Path, big: Path) -> dict:
    """A static PEP 503 index (HTML, sha256 fragments, data-requires-python)."""
    files = corpus / "files"
    cache_path = corpus / "hashes.json"
    cache = json.loads(cache_path.read_text()) if cache_path.exists() else {}
    projects: dict[str, list] = {}
    dists = []
    for p in sorted(files.iterdir()):
        name, version = _dist_name_version(p.name)
        if not name or (normalize(name) == BIG_PROJECT and p.name != big.name):
            continue  # only the big file of the size asked for is listed
        st = p.stat()
        key = "%s:%d:%d" % (p.name, st.st_size, st.st_mtime_ns)
        if key not in cache:
            h = hashlib.sha256()
            with open(p, "rb") as f:
                while b := f.read(1 << 20):
                    h.update(b)
            cache[key] = {"sha256": h.hexdigest(), "requires_python": _requires_python(p)}
        info = cache[key]
        projects.setdefault(normalize(name), []).append((p.name, info, st.st_size))
        if normalize(name) != BIG_PROJECT:
            dists.append((normalize(name), version))
    cache_path.write_text(json.dumps(cache, indent=0))
    simple = corpus / "simple"
    if simple.exists():
        shutil.rmtree(simple)
    simple.mkdir()
    root = ['<!DOCTYPE html>\n<html><head><meta name="pypi:repository-version" content="1.0">'
            '<title>Simple index</title></head><body>']
    for proj in sorted(projects):
        root.append('<a href="%s/">%s</a><br>' % (proj, proj))
        lines = ['<!DOCTYPE html>\n<html><head><meta name="pypi:repository-version" content="1.0">'
                 '<title>Links for %s</title></head><body><h1>Links for %s</h1>' % (proj, proj)]
        for fn, info, _size in projects[proj]:
            rp = info["requires_python"]
            attr = ' data-requires-python="%s"' % html.escape(rp) if rp else ""
            lines.append('<a href="../../files/%s#sha256=%s"%s>%s</a><br>' % (
                urllib.parse.quote(fn), info["sha256"], attr, html.escape(fn)))
        lines.append("</body></html>\n")
        (simple / proj).mkdir()
        (simple / proj / "index.html").write_text("\n".join(lines))
    root.append("</body></html>\n")
    (simple / "index.html").write_text("\n".join(root))
    reqs = corpus / "install-requirements.txt"
    reqs.write_text("".join("%s==%s\n" % d for d in sorted(set(dists))))
    total = sum(s for ps in projects.values() for _, _, s in ps) - big.stat().st_size
    return {
        "dir": corpus, "requirements": reqs, "projects": sorted(projects),
        "n_dists": len(dists), "corpus_bytes": total,
        "big_name": big.name, "big_size": big.stat().st_size,
        "n_sdists": sum(1 for ps in projects.values() for fn, _, _ in ps if not fn.endswith(".whl")),
    }
