"""Clients of the proxy and what they send: real pip, uv and twine, HTTP helpers, uploads, logins."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import bcrypt
from twisted.internet import defer
from twisted.internet.protocol import Protocol
from twisted.web.client import ResponseFailed
from twisted.web.http_headers import Headers

from .builders import Built

__all__ = [
    "FirstByteTimer",
    "clean_client_env",
    "get",
    "header",
    "htpasswd",
    "multipart_form",
    "pip_install",
    "run_client",
    "timed_get",
    "twine_upload",
    "upload",
    "uv_install",
]

UV = str(Path(sys.executable).with_name("uv"))


# --------------------------------------------------------------------------- real clients


def clean_client_env() -> dict[str, str]:
    """os.environ without any pip/uv settings: this machine's own find-links must not leak in."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.upper().startswith(("PIP_", "UV_"))
        # requests (in pip and twine) lets these override an explicit --cert.
        and key.upper() not in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")
    }
    env.update(
        PIP_CONFIG_FILE=os.devnull,
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        UV_NO_CONFIG="1",
    )
    return env


def run_client(argv: list[str], timeout: float = 180) -> "subprocess.CompletedProcess[str]":
    """Run a real client (pip, uv, twine) isolated from this machine's configuration."""
    return subprocess.run(argv, capture_output=True, text=True, env=clean_client_env(),
                          timeout=timeout, stdin=subprocess.DEVNULL)


def pip_install(index_url: str, target: Path, *requirements: str, extra: list[str] = ()) -> "subprocess.CompletedProcess[str]":
    return run_client([sys.executable, "-m", "pip", "install", "--isolated", "--no-cache-dir",
                       "--disable-pip-version-check", "--index-url", index_url,
                       "--target", str(target), *extra, *requirements])


def uv_install(index_url: str, target: Path, *requirements: str) -> "subprocess.CompletedProcess[str]":
    return run_client([UV, "pip", "install", "--no-config", "--no-cache", "--python", sys.executable,
                       "--index-url", index_url, "--target", str(target), *requirements])


def twine_upload(url: str, user: str, password: str, *files: Path, cert: Path | None = None):
    env = {k: v for k, v in clean_client_env().items() if not k.startswith("TWINE_")}
    env["PYTHON_KEYRING_BACKEND"] = "keyring.backends.null.Keyring"
    argv = [sys.executable, "-m", "twine", "upload", "--config-file", os.devnull, "--disable-progress-bar",
            "--non-interactive", "--repository-url", url, "-u", user, "-p", password]
    if cert is not None:
        argv += ["--cert", str(cert)]
    return subprocess.run([*argv, *map(str, files)], capture_output=True, text=True, env=env, timeout=120,
                          stdin=subprocess.DEVNULL)


def htpasswd(path: Path, **users: str) -> Path:
    """An htpasswd file of these users and passwords (bcrypt, cheap rounds)."""
    path.write_text("".join(
        f"{user}:{bcrypt.hashpw(pw.encode(), bcrypt.gensalt(rounds=4)).decode()}\n" for user, pw in users.items()
    ))
    return path


# --------------------------------------------------------------------------- HTTP


def get(url: str, headers: dict[str, str] | None = None, timeout: float = 20) -> tuple[int, dict, bytes]:
    """(status, headers, body) of a blocking GET; an HTTP error status is an answer too."""
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def header(response, name: str) -> str | None:
    """The first value of a header of a Twisted response, or None."""
    values = response.headers.getRawHeaders(name)
    return values[0] if values else None


def _now() -> float:
    from twisted.internet import reactor

    return reactor.seconds()


class FirstByteTimer(Protocol):
    """Notes when the first and the last byte of a body arrive."""

    def __init__(self) -> None:
        self.first: float | None = None
        self.received = 0
        self.done: defer.Deferred[float] = defer.Deferred()
        self.failed: Exception | None = None

    def dataReceived(self, data: bytes) -> None:
        if self.first is None:
            self.first = _now()
        self.received += len(data)

    def connectionLost(self, reason) -> None:
        if not reason.check(ResponseFailed):
            pass
        else:
            self.failed = reason.value
        self.done.callback(_now())


async def timed_get(proxy, path: str) -> tuple[object, FirstByteTimer, float]:
    """GET a path of an in-process proxy, timing its body: (response, timer, when it started)."""
    started = _now()
    response = await proxy.http.request(b"GET", (proxy.root_url + path).encode(), Headers())
    timer = FirstByteTimer()
    response.deliverBody(timer)
    await timer.done
    return response, timer, started


# --------------------------------------------------------------------------- uploads


def multipart_form(built: Built, boundary: str = "pypiproxy-test-boundary") -> tuple[str, bytes]:
    """(Content-Type, body) of an upload with the form fields twine sends."""
    fields = {
        ":action": "file_upload",
        "protocol_version": "1",
        "metadata_version": "2.1",
        "name": built.name,
        "version": built.version,
        "filetype": "bdist_wheel",
        "pyversion": "py3",
        "sha256_digest": built.sha256,
        "md5_digest": hashlib.md5(built.data).hexdigest(),
    }
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in fields.items()
    ]
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="content"; filename="{built.filename}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n".encode() + built.data + b"\r\n"
    )
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    return f"multipart/form-data; boundary={boundary}", body


async def upload(proxy, built: Built, path: str = "legacy/", auth=None, filename: str | None = None, **fields):
    """Upload through an in-process proxy's own treq client: (response, body text)."""
    form = {
        ":action": "file_upload",
        "protocol_version": "1",
        "name": built.name,
        "version": built.version,
        "filetype": "bdist_wheel" if built.filename.endswith(".whl") else "sdist",
        "sha256_digest": built.sha256,
        "md5_digest": hashlib.md5(built.data).hexdigest(),
        "blake2_256_digest": hashlib.blake2b(built.data, digest_size=32).hexdigest(),
        "metadata_version": "2.1",
        "summary": "x" * 5000,
    }
    form.update(fields)
    files = {"content": (filename or built.filename, "application/octet-stream", io.BytesIO(built.data))}
    response = await proxy.treq.post(proxy.root_url + path, data=list(form.items()), files=files, auth=auth)
    return response, await response.text()
