"""The measurements, one function per section of the report; each gets the
`Bench` of the run and records into it.  Runs alternate between the targets
(run 1 of every target, then run 2...); a target that fails is recorded as an
error and the others go on."""

from __future__ import annotations

import hashlib
import json
import time
import urllib.parse
from types import MappingProxyType

from bench import Bench
from clients import UV_ACCEPT
from common import http_get, log, median
from corpus import BIG_PROJECT
from relay import HashingRelay, Relay
from scale import accel, cold_list, curves, logging_rate
from targets import PyPIProxy


def install(b: Bench):
    """(1) cold and (2) warm install of the whole corpus."""
    log("== (1,2) uv pip install --no-cache of %d distributions: cold and warm" % b.corpus["n_dists"])
    # one discarded install first: page cache, uv binary, interpreter files
    b.uv_install(b.nginx.url, "priming (discarded)")
    for i in range(b.args.runs):
        for t in b.targets:
            try:
                t.reset()
                b.record(t, "install_cold_s", b.uv_install(t.index_url, "%s cold #%d" % (t.name, i + 1)))
                b.record(t, "install_warm_s", b.uv_install(t.index_url, "%s warm #%d" % (t.name, i + 1)))
            except Exception as e:  # noqa: BLE001
                b.fail(t, "install", e)


def bigfile(b: Bench):
    """(3) big file cold: TTFB and MB/s, and the hashing relay's floor; (4) warm."""
    log("== (3,4) big file %s, cold and warm" % b.corpus["big_name"])
    want = b.corpus["big_size"]
    for i in range(b.args.runs):
        for t in b.targets:
            try:
                t.reset()
                url = b.big_url(t)
                for phase in ("cold", "warm"):
                    d = b.clients.download(url)
                    if d.get("status") != 200 or d.get("size") != want:
                        raise RuntimeError("%s download: %s" % (phase, d))
                    log("  %-28s ttfb %7.1f ms  %7.1f MB/s  (%.2f s%s)" % (
                        "%s %s #%d" % (t.name, phase, i + 1), d["ttfb"] * 1000, d["mbps"], d["total"],
                        ", redirected" if d.get("redirects") else ""))
                    b.record(t, "big_%s_ttfb_ms" % phase, d["ttfb"] * 1000)
                    b.record(t, "big_%s_mbps" % phase, d["mbps"])
                    b.record(t, "big_%s_s" % phase, d["total"])
                    if d.get("redirects"):
                        b.record(t, "big_%s_redirected" % phase, 1)
            except Exception as e:  # noqa: BLE001
                b.fail(t, "bigfile", e)
        try:
            relay_floor(b)
        except Exception as e:  # noqa: BLE001
            b.fail(HashingRelay, "bigfile", e)


def relay_floor(b: Bench):
    """What the HashingRelay reaches on the cold big file."""
    big = b.corpus["dir"] / "files" / b.corpus["big_name"]
    if b.big_sha256 is None:
        with open(big, "rb") as f:
            b.big_sha256 = hashlib.file_digest(f, "sha256").hexdigest()
    relay = HashingRelay(b.nginx.port, "/files/" + urllib.parse.quote(big.name), b.shm / "relay.part")
    d = b.clients.download(relay.url)
    relay.thread.join(60)
    if d.get("status") != 200 or d.get("size") != b.corpus["big_size"] or relay.sha256 != b.big_sha256:
        raise RuntimeError("relay download: %s, sha256 %s" % (d, relay.sha256))
    log("  %-28s %7.1f MB/s  (%.2f s)" % ("hashing relay (floor)", d["mbps"], d["total"]))
    b.record(HashingRelay, "big_cold_mbps", d["mbps"])


def pages(b: Bench):
    """(5) cached index pages: requests/s, p99 and errors per concurrency."""
    projects = [p for p in b.corpus["projects"] if p != BIG_PROJECT]
    log("== (5) index pages: %d cached project pages, concurrency %s, %s" % (
        len(projects), b.args.concurrency, "wrk" if b.clients.wrk else "builtin load generator"))
    for t in b.targets:
        try:
            for p in projects:  # fill the cache (and check every page works)
                status, _, _ = http_get(t.index_url + p + "/", accept=UV_ACCEPT)
                if status != 200:
                    raise RuntimeError("GET %s%s/ -> %s" % (t.index_url, p, status))
        except Exception as e:  # noqa: BLE001
            b.fail(t, "pages", e)
    for i in range(b.args.runs):
        for c in b.args.concurrency:
            for t in b.targets:
                try:
                    r = b.clients.load(t.index_url, projects, c, b.args.duration)
                    log("  %-28s %8.0f req/s  p50 %6.2f ms  p99 %6.2f ms  errors %d  non-2xx %d" % (
                        "%s c=%d #%d" % (t.name, c, i + 1), r["rps"], r["p50_ms"], r["p99_ms"],
                        r["errors"], r["non2xx"]))
                    b.record(t, "pages_c%d_rps" % c, r["rps"])
                    b.record(t, "pages_c%d_p99_ms" % c, r["p99_ms"])
                    b.record(t, "pages_c%d_errors" % c, r["errors"] + r["non2xx"])
                except Exception as e:  # noqa: BLE001
                    b.fail(t, "pages", e)


def herd(b: Bench):
    """(6) N clients at once on the cold big file."""
    n = b.args.herd_clients
    rate = b.args.herd_rate
    log("== (6) %d clients on one cold big file at once (upstream sends it at %s per connection)" % (
        n, "%g MB/s" % rate if rate else "full speed"))
    skip = set()
    for i in range(b.args.runs):
        for t in b.targets:
            if t.name in skip:
                continue
            try:
                t.slow = bool(rate)
                path = urllib.parse.urlsplit(t.upstream).path.replace("/simple/", "/files/") + \
                    b.corpus["big_name"]
                # the reference: one client alone on the same cold file
                t.reset()
                d = b.clients.download(b.big_url(t))
                if d.get("status") != 200 or d.get("size") != b.corpus["big_size"]:
                    raise RuntimeError("single download: %s" % d)
                b.record(t, "herd_single_s", d["total"])
                t.reset()
                url = b.big_url(t)
                time.sleep(0.2)
                t.reset_peak()
                off = b.nginx.log_offset()
                t0 = time.perf_counter()
                outs = b.clients.download_many(url, n)
                total = time.perf_counter() - t0
                peak = t.peak_mb()
                fetches = upstream_gets(b, off, path)  # waits for background fetches too
                bad = [o for o in outs if o.get("status") != 200 or o.get("size") != b.corpus["big_size"]]
                slowest = max(o.get("total") or 0 for o in outs)
                x = slowest / d["total"]
                log("  %-28s upstream GETs %d  total %.2f s  slowest %.2f s = %.2fx single (%.2f s)  "
                    "peak RSS %.0f MB%s" % ("%s #%d" % (t.name, i + 1), fetches, total, slowest, x,
                                            d["total"], peak,
                                            "  FAILED %d: %s" % (len(bad), bad[0]) if bad else ""))
                b.record(t, "herd_upstream_gets", fetches)
                b.record(t, "herd_total_s", total)
                b.record(t, "herd_slowest_x_single", x)
                b.record(t, "herd_peak_rss_mb", peak)
                b.record(t, "herd_failed_clients", len(bad))
                t.peak_rss_mb = max(t.peak_rss_mb, peak)
                if total > b.args.herd_cap and i + 1 < b.args.runs:
                    log("  %s took over %g s: measured once (--herd-cap)" % (t.name, b.args.herd_cap))
                    skip.add(t.name)
            except Exception as e:  # noqa: BLE001
                b.fail(t, "herd", e)
            finally:
                t.slow = False


def upstream_gets(b: Bench, off, path, settle=1.0, limit=30.0) -> int:
    """GETs of path in nginx's access log since off, once the count stays put."""
    deadline = time.monotonic() + limit
    last, stable_since = None, time.monotonic()
    while time.monotonic() < deadline:
        n = sum(1 for f in b.nginx.log_since(off)
                if len(f) >= 2 and f[0] == "GET" and f[1] == path)
        if n != last:
            last, stable_since = n, time.monotonic()
        elif time.monotonic() - stable_since >= settle:
            break
        time.sleep(0.2)
    return last or 0


def tiers(b: Bench):
    """(8) straight from a remote tier vs through a local tier, over a delayed link."""
    if "pypiproxy" not in [t.name for t in b.targets]:
        log("== (8) tiers: skipped (pypiproxy is not running)")
        return
    log("== (8) tiers: uv straight from a remote pypiproxy vs via a local pypiproxy chained to it")
    base = next(t for t in b.targets if t.name == "pypiproxy")
    base.stop()
    remote = PyPIProxy(b.lab, name="tier-remote", sticky_port=True, venv=base.venv)
    try:
        for rtt in b.args.rtts:
            res = b.results["tiers"].setdefault(str(rtt), {})
            remote.reset()
            relay = Relay(b.work, remote.port, rtt, b.procs)
            local = PyPIProxy(b.lab, upstream="http://127.0.0.1:%d/simple/" % relay.port, name="tier-local",
                              sticky_port=True, venv=base.venv)
            try:
                for i in range(b.args.runs):
                    label = "rtt %g ms #%d" % (rtt, i + 1)
                    remote.reset()
                    via_relay = "http://127.0.0.1:%d/simple/" % relay.port
                    res.setdefault("remote_cold_s", []).append(b.uv_install(via_relay, "remote cold " + label))
                    res.setdefault("remote_warm_s", []).append(b.uv_install(via_relay, "remote warm " + label))
                    remote.reset()
                    local.reset()
                    res.setdefault("chained_cold_s", []).append(b.uv_install(local.index_url, "chained cold " + label))
                    res.setdefault("chained_warm_s", []).append(b.uv_install(local.index_url, "chained warm " + label))
                    local.reset()  # a new dev box behind a warm company tier
                    res.setdefault("chained_local_cold_s", []).append(
                        b.uv_install(local.index_url, "chained local-cold " + label))
            finally:
                local.stop()
                relay.stop()
    except Exception as e:  # noqa: BLE001
        b.fail(remote, "tiers", e)
    finally:
        remote.stop()
    for rtt, res in b.results["tiers"].items():
        for k in list(res):
            if k.endswith("_s") and isinstance(res[k], list):
                res[k + "_median"] = median(res[k])


def expired(b: Bench):
    """(9) a warm local tier behind the slowest link of --rtts, every page expired
    (--index-ttl 0) against the same tier within its TTL: stale-while-revalidate answers
    at once, so the expired install must be as fast as the warm one."""
    if "pypiproxy" not in [t.name for t in b.targets]:
        log("== (9) expired pages: skipped (pypiproxy is not running)")
        return
    rtt = max(b.args.rtts)
    log("== (9) a warm local tier behind a %g ms link: pages within their TTL, then all expired" % rtt)
    base = next(t for t in b.targets if t.name == "pypiproxy")
    base.stop()
    remote = PyPIProxy(b.lab, name="swr-remote", venv=base.venv)
    relay = local = None
    try:
        remote.reset()
        relay = Relay(b.work, remote.port, rtt, b.procs)
        local = PyPIProxy(b.lab, upstream="http://127.0.0.1:%d/simple/" % relay.port, name="swr-local",
                          venv=base.venv)
        local.reset()
        b.uv_install(local.index_url, "fill both tiers (discarded)")
        for i in range(b.args.runs):
            # Restarted each time, so that it reads its pages from the disk cache; the two
            # kinds take turns going first (the machine's pace drifts over a run).
            kinds = [("warm", ()), ("expired", ("--index-ttl", "0"))]
            for label, args in kinds if i % 2 == 0 else kinds[::-1]:
                local.stop()
                local.args = args
                local.start()
                b.record(base, "swr_%s_s" % label, b.uv_install(local.index_url, "%s #%d" % (label, i + 1)))
                if label == "expired":
                    _, body, _ = http_get("http://127.0.0.1:%d/+stats" % local.port)
                    stats = json.loads(body)
                    b.record(base, "swr_revalidations", stats.get("stale_while_revalidate", 0))
                    b.record(base, "swr_not_modified", stats.get("upstream_page_not_modified", 0))
    except Exception as e:  # noqa: BLE001
        b.fail(local or remote, "expired", e)
    finally:
        for process in (local, relay, remote):
            if process is not None:
                process.stop()


# In the order they run and are reported (--only picks among them); the last four are scale.py's.
SECTIONS = MappingProxyType({"install": install, "bigfile": bigfile, "pages": pages,
                             "herd": herd, "tiers": tiers, "expired": expired,
                             "list": cold_list, "curves": curves, "logging": logging_rate, "accel": accel})
# Names --only takes for several sections at once.
GROUPS = MappingProxyType({"scale": ("list", "curves", "logging", "accel")})
