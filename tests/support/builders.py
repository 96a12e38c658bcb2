"""Real, tiny, reproducible distributions built in memory: wheels, sdists, and a cache of them."""

from __future__ import annotations

import base64
import csv
import gzip
import hashlib
import io
import json
import random
import tarfile
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from packaging.utils import canonicalize_name
from packaging.version import Version

__all__ = ["Built", "WheelCache", "build_sdist", "build_wheel", "dist_name", "platform_wheel"]

# 1980-01-01 is the earliest zip timestamp; a fixed one makes builds reproducible.
_ZIP_TIME = (2020, 1, 1, 0, 0, 0)
_TAR_MTIME = 1577836800  # 2020-01-01T00:00:00Z


@dataclass(frozen=True)
class Built:
    """A built distribution file held in memory, plus what an index says about it."""

    filename: str
    data: bytes = field(repr=False)
    sha256: str
    metadata: bytes = field(repr=False)
    name: str = ""
    version: str = ""
    requires_python: str | None = None

    @property
    def size(self) -> int:
        """Length of the file in bytes (what PEP 700 calls `size`)."""
        return len(self.data)

    @property
    def metadata_sha256(self) -> str:
        """Hash of the core metadata, as announced by PEP 658/714."""
        return hashlib.sha256(self.metadata).hexdigest()

    def save(self, directory: Path) -> Path:
        """Write the file into ``directory`` under its own name; its path."""
        path = directory / self.filename
        path.write_bytes(self.data)
        return path


def dist_name(name: str) -> str:
    """The wheel/sdist file-name form of a project name (PEP 427 / PEP 625 escaping)."""
    return canonicalize_name(name).replace("-", "_")


def _record_hash(data: bytes) -> str:
    digest = hashlib.sha256(data).digest()
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _metadata(
    name: str,
    version: str,
    summary: str,
    requires_dist: Sequence[str],
    requires_python: str | None,
    description: str | None = None,
    description_content_type: str | None = None,
) -> bytes:
    lines = [
        "Metadata-Version: 2.1",
        f"Name: {name}",
        f"Version: {version}",
        f"Summary: {summary}",
    ]
    if requires_python:
        lines.append(f"Requires-Python: {requires_python}")
    lines.extend(f"Requires-Dist: {req}" for req in requires_dist)
    if description_content_type:
        lines.append(f"Description-Content-Type: {description_content_type}")
    return ("\n".join(lines) + "\n\n" + (description or "")).encode("utf-8")


def _blob(seed: str, size: int) -> bytes:
    """Deterministic incompressible bytes, so large test files stay large on the wire."""
    return random.Random(seed).randbytes(size)


def build_wheel(
    name: str,
    version: str,
    *,
    requires_dist: Sequence[str] = (),
    requires_python: str | None = None,
    extra_bytes: int = 0,
    summary: str = "A tiny test package",
    description: str | None = None,
    description_content_type: str | None = None,
) -> Built:
    """Build a real, pip-installable pure-Python wheel in memory, byte-for-byte reproducibly;
    ``description`` is METADATA's body (a README), of ``description_content_type``."""
    dist = dist_name(name)
    wheel_version = str(Version(version)).replace("-", "_")
    info = f"{dist}-{wheel_version}.dist-info"
    metadata = _metadata(name, version, summary, requires_dist, requires_python, description,
                         description_content_type)
    wheel_file = (
        "Wheel-Version: 1.0\n"
        "Generator: pypiproxy-tests\n"
        "Root-Is-Purelib: true\n"
        "Tag: py3-none-any\n\n"
    ).encode("ascii")
    members: list[tuple[str, bytes, int]] = [
        (f"{dist}/__init__.py", f'VERSION = "{version}"\n'.encode(), zipfile.ZIP_DEFLATED),
    ]
    if extra_bytes:
        members.append(
            (f"{dist}/blob.bin", _blob(f"{dist}-{version}", extra_bytes), zipfile.ZIP_STORED)
        )
    members += [
        (f"{info}/METADATA", metadata, zipfile.ZIP_DEFLATED),
        (f"{info}/WHEEL", wheel_file, zipfile.ZIP_DEFLATED),
    ]
    record = io.StringIO()
    writer = csv.writer(record, lineterminator="\n")
    for path, data, _ in members:
        writer.writerow([path, _record_hash(data), len(data)])
    writer.writerow([f"{info}/RECORD", "", ""])
    members.append((f"{info}/RECORD", record.getvalue().encode(), zipfile.ZIP_DEFLATED))

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for path, data, compress in members:
            zi = zipfile.ZipInfo(path, date_time=_ZIP_TIME)
            zi.external_attr = 0o644 << 16
            zi.create_system = 3
            zi.compress_type = compress
            zf.writestr(zi, data)
    data = buf.getvalue()
    return Built(
        filename=f"{dist}-{wheel_version}-py3-none-any.whl",
        data=data,
        sha256=hashlib.sha256(data).hexdigest(),
        metadata=metadata,
        name=name,
        version=version,
        requires_python=requires_python,
    )


def build_sdist(
    name: str,
    version: str,
    *,
    requires_dist: Sequence[str] = (),
    requires_python: str | None = None,
    summary: str = "A tiny test package",
) -> Built:
    """Build a valid, reproducible `.tar.gz` sdist (PKG-INFO, pyproject.toml, one module)."""
    dist = dist_name(name)
    norm_version = str(Version(version))
    base = f"{dist}-{norm_version}"
    pkg_info = _metadata(name, version, summary, requires_dist, requires_python)
    deps = ", ".join(json.dumps(r) for r in requires_dist)
    pyproject = (
        "[build-system]\n"
        'requires = ["setuptools>=61"]\n'
        'build-backend = "setuptools.build_meta"\n\n'
        "[project]\n"
        f"name = {json.dumps(name)}\n"
        f"version = {json.dumps(version)}\n"
        f"description = {json.dumps(summary)}\n"
        f"dependencies = [{deps}]\n"
        + (f"requires-python = {json.dumps(requires_python)}\n" if requires_python else "")
    ).encode()
    members = [
        (f"{base}/PKG-INFO", pkg_info),
        (f"{base}/pyproject.toml", pyproject),
        (f"{base}/{dist}/__init__.py", f'VERSION = "{version}"\n'.encode()),
    ]
    raw = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
        with tarfile.open(fileobj=gz, mode="w", format=tarfile.USTAR_FORMAT) as tar:
            for path, data in members:
                ti = tarfile.TarInfo(path)
                ti.size = len(data)
                ti.mtime = _TAR_MTIME
                ti.mode = 0o644
                ti.uid = ti.gid = 0
                ti.uname = ti.gname = ""
                tar.addfile(ti, io.BytesIO(data))
    data = raw.getvalue()
    return Built(
        filename=f"{base}.tar.gz",
        data=data,
        sha256=hashlib.sha256(data).hexdigest(),
        metadata=pkg_info,
        name=name,
        version=version,
        requires_python=requires_python,
    )


def platform_wheel(filename: str, requires_dist: Sequence[str] = ()) -> Built:
    """A wheel with any tags: just a zip with METADATA, which is all ``warm`` ever opens."""
    name, version = filename.split("-")[:2]
    metadata = "".join(
        [f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"]
        + [f"Requires-Dist: {r}\n" for r in requires_dist]
    ).encode()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        archive.writestr(f"{name}-{version}.dist-info/METADATA", metadata)
    data = buf.getvalue()
    return Built(filename, data, hashlib.sha256(data).hexdigest(), metadata, name, version)


class WheelCache:
    """Builds each (kind, name, version, options) once per session; building is pure."""

    def __init__(self) -> None:
        self._built: dict[tuple[object, ...], Built] = {}

    def _get(self, builder: Callable[..., Built], name: str, version: str, **options: object) -> Built:
        key = (builder.__name__, name, version, tuple(sorted((k, repr(v)) for k, v in options.items())))
        if key not in self._built:
            self._built[key] = builder(name, version, **options)
        return self._built[key]

    def wheel(self, name: str, version: str, **options: object) -> Built:
        """build_wheel(name, version, **options), cached."""
        return self._get(build_wheel, name, version, **options)

    def sdist(self, name: str, version: str, **options: object) -> Built:
        """build_sdist(name, version, **options), cached."""
        return self._get(build_sdist, name, version, **options)
