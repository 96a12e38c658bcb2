"""TLS both ways: an internet-facing tier with a certificate chain and --auth all, and a
second tier that chains to it over https with --upstream-ca and credentials in the URL."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from urllib.parse import urljoin

import pytest_twisted
import trustme
from twisted.internet import threads

from support.builders import build_wheel
from support.clients import htpasswd, pip_install, twine_upload
from support.processes import free_port
from support.waiting import wait_until

SECRET = "s3cr3t-7f0c-do-not-leak"


def fetch(url: str, headers: dict[str, str] | None = None) -> tuple[int, str, bytes]:
    """(status, all headers as text, body); errors are answers too."""
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return response.status, str(response.headers), response.read()
    except urllib.error.HTTPError as e:
        return e.code, str(e.headers), e.read()


@pytest_twisted.ensureDeferred
async def test_tls_tiers_chain_with_credentials_that_never_leak(twistd, tmp_path):
    # A root CA the clients trust, an intermediate only the server sends (extraCertChain).
    ca = trustme.CA()
    intermediate = ca.create_child_ca()
    leaf = intermediate.issue_cert("127.0.0.1", "localhost")
    ca_pem, key_pem, cert_pem, chain_pem = (tmp_path / n for n in ("ca.pem", "key.pem", "cert.pem", "chain.pem"))
    ca.cert_pem.write_to_path(str(ca_pem))
    leaf.private_key_pem.write_to_path(str(key_pem))
    leaf.cert_chain_pems[0].write_to_path(str(cert_pem))
    leaf.cert_chain_pems[1].write_to_path(str(chain_pem))

    users = htpasswd(tmp_path / "users", alice=SECRET)
    port = free_port()
    listen = (f"ssl:{port}:privateKey={key_pem}:certKey={cert_pem}:extraCertChain={chain_pem}"
              ":interface=127.0.0.1")
    internet = twistd(["--no-upstream", "--htpasswd", str(users), "--auth", "all"],
                      name="internet", scheme="https", port=port, listen=listen)
    await threads.deferToThread(internet.wait_ready, 20.0, ssl.create_default_context(cafile=str(ca_pem)))

    built = build_wheel("corp-secret", "1.0")
    done = await threads.deferToThread(
        twine_upload, internet.root_url + "legacy/", "alice", SECRET, built.save(tmp_path), cert=ca_pem
    )
    assert done.returncode == 0, done.stdout + done.stderr

    # Anonymous readers are turned away; pip with the login in the index URL gets in.
    anonymous = await threads.deferToThread(
        pip_install, internet.url, tmp_path / "anonymous", "corp-secret", extra=["--cert", str(ca_pem), "--no-input"]
    )
    assert anonymous.returncode != 0
    # Access lines reach the server's log in batches, within half a second.
    await wait_until(lambda: '"GET /simple/corp-secret/ HTTP/1.1" 401' in internet.log(), what="the 401 logged")
    with_login = internet.url.replace("https://", f"https://alice:{SECRET}@")
    direct = await threads.deferToThread(
        pip_install, with_login, tmp_path / "direct", "corp-secret", extra=["--cert", str(ca_pem)]
    )
    assert direct.returncode == 0, direct.stdout + direct.stderr
    assert (tmp_path / "direct" / "corp_secret" / "__init__.py").exists()

    # The next tier: plain http to its clients, verified https with credentials upstream.
    office = twistd(["--upstream", with_login, "--upstream-ca", str(ca_pem)], name="office")
    await threads.deferToThread(office.wait_ready)
    chained = await threads.deferToThread(pip_install, office.url, tmp_path / "chained", "corp-secret")
    assert chained.returncode == 0, chained.stdout + chained.stderr + office.log()
    assert (tmp_path / "chained" / "corp_secret" / "__init__.py").exists()

    # Without --upstream-ca the system trust store does not know our CA: no connection.
    unverified = twistd(["--upstream", with_login, "--upstream-timeout", "5"], name="unverified")
    await threads.deferToThread(unverified.wait_ready)
    status, headers, body = await threads.deferToThread(fetch, unverified.url + "corp-secret/")
    assert status == 502 and b"certificate verify failed" in body, body
    seen = [headers, body.decode("latin-1")]

    # Everything the office tier answers, and every log line, is free of the secret.
    page_url = office.url + "corp-secret/"
    for url, accept in [
        (office.url, "text/html"),
        (page_url, "text/html"),
        (page_url, "application/vnd.pypi.simple.v1+json"),
        (office.root_url + "+stats", "*/*"),
    ]:
        status, headers, body = await threads.deferToThread(fetch, url, {"Accept": accept})
        assert status == 200, (url, body)
        seen += [headers, body.decode("latin-1")]
    status, _, page = await threads.deferToThread(fetch, page_url, {"Accept": "application/vnd.pypi.simple.v1+json"})
    file_url = urljoin(page_url, json.loads(page)["files"][0]["url"])
    for url in (file_url, file_url + ".metadata"):
        status, headers, body = await threads.deferToThread(fetch, url)
        assert status == 200, url
        seen.append(headers)
    seen += [office.log(), unverified.log(), internet.log()]
    assert "upstream fetch https://127.0.0.1" in office.log()  # the log does name the upstream
    for text in seen:
        assert SECRET not in text
        assert "alice:" not in text


def test_ca_file_without_a_certificate_is_refused_at_start(tmp_path):
    import subprocess

    from support.clients import clean_client_env
    from support.processes import REPO, TWISTD

    bogus = tmp_path / "bogus.pem"
    bogus.write_text("not a certificate\n")
    env = clean_client_env()
    env["PYTHONPATH"] = str(REPO)
    done = subprocess.run(
        [TWISTD, "-n", "--pidfile=", "pypiproxy", "--upstream", "https://127.0.0.1:1/simple/",
         "--upstream-ca", str(bogus), "--cache-dir", str(tmp_path / "cache")],
        capture_output=True, text=True, env=env, timeout=60,
    )
    assert done.returncode != 0
    assert done.stderr.strip().count("\n") == 0 and "--upstream-ca" in done.stderr, done.stderr
