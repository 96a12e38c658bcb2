"""Real processes for the tests: free loopback ports, stopping children, a real ``twistd pypiproxy``."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

from .clients import clean_client_env
from .waiting import block_until

__all__ = ["REPO", "TWISTD", "Twistd", "free_port", "stop_process"]

REPO = Path(__file__).resolve().parents[2]
# The twistd script of the environment running the tests (installed with Twisted).
TWISTD = str(Path(sys.executable).with_name("twistd"))


def free_port() -> int:
    """A loopback port nothing listens on now (for a child process to listen on, or to find closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_process(process: subprocess.Popen, signal_number: int | None = None) -> None:
    """Ask a child to stop (SIGTERM, or the signal given), kill it after 10 s; reap it."""
    if process.poll() is None:
        process.send_signal(signal_number or signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class Twistd:
    """A real ``twistd -n pypiproxy`` subprocess on a free loopback port."""

    def __init__(self, args: list[str], cache_dir: Path, scheme: str = "http", port: int | None = None,
                 listen: str | None = None) -> None:
        self.port = port or free_port()
        self.cache_dir = cache_dir
        self.scheme = scheme
        self.log_path = cache_dir.parent / f"twistd-{self.port}.log"
        listen = listen or f"tcp:{self.port}:interface=127.0.0.1"
        env = clean_client_env()
        env["PYTHONPATH"] = str(REPO)
        self.argv = [TWISTD, "--nodaemon", "--pidfile=", "--logfile", str(self.log_path),
                     "pypiproxy", "--listen", listen, "--cache-dir", str(cache_dir), *args]
        self.process = subprocess.Popen(self.argv, env=env, stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    @property
    def root_url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}/"

    @property
    def url(self) -> str:
        return self.root_url + "simple/"

    def log(self) -> str:
        try:
            return self.log_path.read_text()
        except FileNotFoundError:
            return ""

    def wait_ready(self, timeout: float = 20.0, ssl_context=None) -> "Twistd":
        """Block (in a thread, please) until /+health answers, or fail with the log."""

        def answers() -> bool:
            if self.process.poll() is not None:
                raise RuntimeError(f"twistd exited {self.process.returncode}: "
                                   f"{self.process.stderr.read().decode()} {self.log()}")
            try:
                with urllib.request.urlopen(self.root_url + "+health", timeout=2, context=ssl_context):
                    return True
            except urllib.error.HTTPError:
                return True  # it answers (e.g. 401 with --auth all): it is up
            except OSError:
                return False

        block_until(answers, timeout, 0.1, what=lambda: f"twistd to come up: {self.log()}")
        return self

    def stop(self) -> None:
        stop_process(self.process)
        if self.process.stderr:
            self.process.stderr.close()

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()
