"""nginx: the static upstream of every proxy and the "direct" baseline.

Started with a config of its own in the run's temp dir (sendfile, one worker
per core); its access log counts the upstream fetches.  The scale sections
start more of them: one on a synthetic index (gzip on), one in front of
pypiproxy (extra server blocks).
"""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

from common import free_port, wait_http
from processes import Processes


class Nginx:
    """nginx on 127.0.0.1 serving the dir root: /simple/ is the index, /slow/simple/
    the same index whose files are sent at slow_rate_mbps per connection; with gzip, pages
    are sent gzipped to who asks; extra is more of the http block (e.g. server blocks)."""

    def __init__(self, root: Path, work: Path, procs: Processes, slow_rate_mbps: float = 0,
                 name: str = "nginx", gzip: bool = False, extra: str = ""):
        self.root = root
        self.procs = procs
        self.slow_rate = int(slow_rate_mbps * 1e6)
        self.gzip = "gzip on; gzip_types text/html application/json;" if gzip else ""
        self.extra = extra
        self.dir = work / name
        self.port = free_port()
        self.proc = None
        self.access_log = self.dir / "access.log"

    @property
    def base(self):
        return "http://127.0.0.1:%d/" % self.port

    @property
    def url(self):
        return self.base + "simple/"

    @property
    def slow_url(self):
        """The same index, its files sent at most at --herd-rate per connection."""
        return "http://127.0.0.1:%d/slow/simple/" % self.port

    def start(self):
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        if not os.path.exists(nginx):
            raise SystemExit("nginx not found: apt-get install nginx")
        self.dir.mkdir(parents=True, exist_ok=True)
        for d in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (self.dir / d).mkdir(exist_ok=True)
        conf = self.dir / "nginx.conf"
        conf.write_text("""
daemon off;
master_process on;
worker_processes auto;
user root;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    types {{ text/html html; application/octet-stream whl gz zip bz2; }}
    default_type application/octet-stream;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    log_format bench '$request_method $uri $status $body_bytes_sent $request_time $http_range';
    access_log {d}/access.log bench;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_timeout 75s;
    keepalive_requests 1000000;
    absolute_redirect off;
    {gzip}
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        root {root};
        location /simple/ {{ index index.html; }}
        location /files/ {{ }}
        location /slow/ {{ alias {root}/; index index.html; limit_rate {rate}; }}
    }}
    {extra}
}}
""".format(d=self.dir, port=self.port, root=self.root, rate=self.slow_rate, gzip=self.gzip, extra=self.extra))
        self.proc = self.procs.start([nginx, "-c", conf, "-p", self.dir], self.dir / "stderr.log")
        wait_http(self.url, 20, self.proc, ok=lambda s: s == 200)

    def stop(self):
        self.procs.stop(self.proc, signal.SIGQUIT)
        self.proc = None

    def log_offset(self) -> int:
        try:
            return self.access_log.stat().st_size
        except OSError:
            return 0

    def log_since(self, offset) -> list[list[str]]:
        with open(self.access_log, "rb") as f:
            f.seek(offset)
            return [line.decode(errors="replace").split() for line in f.read().splitlines()]
