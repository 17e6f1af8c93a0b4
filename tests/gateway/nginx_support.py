"""A private nginx (the Debian package) on loopback, in front of a small echo upstream, with the
decision point's HTTP endpoint behind `auth_request`. Used by tests/gateway/test_nginx.py and
benchmarks/bench_nginx.py."""

from __future__ import annotations

import grp
import json
import os
import pwd
import shutil
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.gateway.http_fixtures import wait_for_port
from tests.server.conftest import free_port

# The auth location, as the README shows it. `{pdp}` is an upstream block of the decision point.
AUTH_LOCATION = """\
    location = /_pdp_check {
        internal;
        proxy_pass http://pdp/;
        proxy_http_version 1.1;
        proxy_set_header Connection "";          # keep-alive to the decision point
        proxy_pass_request_body off;             # the subrequest never carries the body
        proxy_set_header Content-Length "";
        proxy_set_header X-Original-URI $request_uri;
        proxy_set_header X-Original-Method $request_method;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Host $host;
        proxy_set_header X-Forwarded-Uri "";     # only the X-Original-* pair describes the request
        proxy_set_header X-Forwarded-Method "";
        proxy_set_header X-Auth-Mfa "";          # facts routes read from headers must not come
        proxy_set_header X-Device-Trusted "";    # from the client (set them from your auth layer)
        proxy_connect_timeout 1s;
        proxy_read_timeout 5s;
    }
"""

PROTECTED_LOCATION = """\
    location / {
        auth_request /_pdp_check;
        auth_request_set $pdp_decision_id $upstream_http_x_pdp_decision_id;
        auth_request_set $pdp_tenant $upstream_http_x_tenant;
        auth_request_set $pdp_mask $upstream_http_x_pdp_mask;
        proxy_set_header X-Pdp-Decision-Id $pdp_decision_id;  # replaces whatever the client sent
        proxy_set_header X-Tenant $pdp_tenant;                # empty: not sent at all
        proxy_set_header X-Pdp-Mask $pdp_mask;                # fields the upstream must mask
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_pass http://app;
    }
"""

DIRECT_LOCATION = """\
    location /direct/ {   # the same upstream without auth_request (benchmark baseline)
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_pass http://app/;
    }
"""


def nginx_binary() -> tuple[str | None, str]:
    """(path, "") or (None, why not). Installs the Debian package when missing and allowed."""
    found = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.access(p, os.X_OK)), None)
    if found is None and os.geteuid() == 0 and shutil.which("apt-get"):
        for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "nginx"]):
            done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
            if done.returncode != 0:
                return None, f"nginx is not installed and `{' '.join(command)}` failed: {done.stderr.strip()[-300:]}"
        found = shutil.which("nginx") or "/usr/sbin/nginx"
    if found is None:
        return None, "nginx is not installed and cannot be installed here (apt-get as root is needed)"
    version = subprocess.run([found, "-V"], capture_output=True, text=True, check=False)
    if "--with-http_auth_request_module" not in version.stderr:
        return None, f"{found} was built without the auth_request module"
    return found, ""


class Upstream:
    """The protected application: answers every request with JSON describing what it received."""

    def __init__(self) -> None:
        self.hits = 0
        self.seen: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms delayed ACK

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                seen = {
                    "method": self.command,
                    "path": self.path,
                    "headers": {k.lower(): v for k, v in self.headers.items()},
                    "body": body.decode("utf-8", "replace"),
                }
                with outer._lock:
                    outer.hits += 1
                    outer.seen.append(seen)
                data = json.dumps(seen).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _answer

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)


def nginx_conf(prefix: Path, port: int, pdp_port: int, app_port: int, *, listen: str = "127.0.0.1") -> str:
    temp = prefix / "temp"
    temps = "\n".join(
        f"    {kind}_temp_path {temp / kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    user = ""
    if os.geteuid() == 0:
        # As root, workers would drop to `nobody`, who cannot reach temp files under a private
        # tmp_path (a 100 kB POST then fails with 500): keep them as the user running the tests,
        # as they are anyway when the tests run unprivileged (nginx then ignores `user`).
        user = f"user {pwd.getpwuid(os.geteuid()).pw_name} {grp.getgrgid(os.getegid()).gr_name};\n"
    return f"""\
{user}worker_processes 1;
events {{ worker_connections 1024; }}
http {{
    access_log off;
{temps}
    upstream pdp {{ server 127.0.0.1:{pdp_port}; keepalive 16; }}
    upstream app {{ server 127.0.0.1:{app_port}; keepalive 16; }}
    server {{
    listen {listen}:{port};
{PROTECTED_LOCATION}{DIRECT_LOCATION}{AUTH_LOCATION}    }}
}}
"""


class Nginx:
    def __init__(self, binary: str, prefix: Path, pdp_port: int, app_port: int, *, listen: str = "127.0.0.1"):
        self.prefix = prefix
        self.listen = listen
        self.port = free_port()
        prefix.mkdir(parents=True, exist_ok=True)
        (prefix / "temp").mkdir(exist_ok=True)
        conf = prefix / "nginx.conf"
        conf.write_text(nginx_conf(prefix, self.port, pdp_port, app_port, listen=listen))
        self.log = open(prefix / "stderr.log", "w+b")  # noqa: SIM115 - closed in stop()
        globals_ = f"daemon off; pid {prefix / 'nginx.pid'}; error_log stderr;"
        self.proc = subprocess.Popen(
            [binary, "-p", str(prefix), "-e", "stderr", "-c", str(conf), "-g", globals_],
            stdout=subprocess.DEVNULL,
            stderr=self.log,
        )
        try:
            wait_for_port(self.port, listen)
        except OSError:
            self.stop()
            raise RuntimeError("nginx did not start:\n" + self.output()) from None

    def output(self) -> str:
        if not self.log.closed:
            self.log.flush()
        return (self.prefix / "stderr.log").read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
