"""Debian's real nginx in front of dashboard processes, with the configuration the project
ships (docs/nginx/lanxi-dashboard.conf), started and stopped by the tests.

``nginx_proxy(folder, upstream_ports)`` renders the shipped file for the given upstream ports
and a free loopback port, runs ``nginx -p FOLDER -c CONF -g 'daemon off;'`` with its pid, logs
and temporary files in ``folder``, and yields a :class:`NginxProxy` (``.url`` is the address
to use). Tests skip, saying why, where nginx is not installed.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.net import free_port
from tests.support.processes import REPO, await_ready

NGINX = "/usr/sbin/nginx"
SHIPPED_CONF = REPO / "docs" / "nginx" / "lanxi-dashboard.conf"
LOG_LINE = re.compile(
    r'^(?P<addr>\S+) \[[^\]]+\] "(?P<method>\S+) (?P<uri>\S+)[^"]*" (?P<status>\d+) \d+ '
    r"upstream=(?P<upstream>.+?) route=(?P<route>\S+) time=\S+$"
)


@dataclass(frozen=True)
class LoggedRequest:
    method: str
    uri: str
    status: int
    upstream: str
    """The web process that answered, ``HOST:PORT`` (``A, B`` when nginx tried A first,
    then B)."""
    route: str
    """The browser's ``lanxi_route`` id (what stickiness hashes)."""


@dataclass(frozen=True)
class NginxProxy:
    url: str
    port: int
    upstream_ports: tuple[int, ...]
    access_log: Path
    error_log: Path

    def requests(self) -> list[LoggedRequest]:
        """Every request nginx has logged so far, oldest first."""
        out = []
        for line in self.access_log.read_text().splitlines():
            m = LOG_LINE.match(line)
            if m:
                out.append(
                    LoggedRequest(
                        m["method"], m["uri"], int(m["status"]), m["upstream"], m["route"]
                    )
                )
        return out


def render(
    conf: str,
    upstream_ports: Sequence[int],
    listen: str,
    access_log: Path,
    upstream_host: str = "127.0.0.1",
) -> str:
    """The shipped configuration with its upstream servers (``upstream_host`` at each port),
    listen address and access log replaced (everything else as shipped)."""
    upstream = re.search(r"upstream lanxi_dashboard \{.*?\n\}", conf, re.S)
    if upstream is None:
        raise ValueError("no upstream lanxi_dashboard block in the shipped configuration")
    lines = upstream.group(0).splitlines()
    at = [i for i, line in enumerate(lines) if re.fullmatch(r" *server \S+.*;", line)]
    if not at:
        raise ValueError("no server lines in the upstream block")
    options = re.fullmatch(r" *server \S+(.*);", lines[at[0]]).group(1)  # type: ignore[union-attr]
    servers = [f"    server {upstream_host}:{p}{options};" for p in upstream_ports]
    rest = [line for i, line in enumerate(lines) if i >= at[0] and i not in at]
    block = "\n".join(lines[: at[0]] + servers + rest)
    conf = conf.replace(upstream.group(0), block)
    conf, listens = re.subn(r"^( *)listen [^;]+;", rf"\1listen {listen};", conf, flags=re.M)
    conf, logs = re.subn(
        r"^( *)access_log \S+ (\S+);", rf"\1access_log {access_log} \2;", conf, flags=re.M
    )
    if listens != 1 or logs != 1:
        raise ValueError("expected one listen and one access_log line in the server block")
    return conf


def main_conf(folder: Path, site: Path) -> str:
    """The nginx.conf around the site file: everything nginx writes stays in ``folder``."""
    tmp = folder / "tmp"
    temp_paths = "\n".join(
        f"    {kind}_temp_path {tmp / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    # As root, workers would run as "nobody" and could not reach the test's private folder.
    user = "user root root;\n" if os.geteuid() == 0 else ""
    return (
        f"{user}worker_processes 1;\n"
        f"pid {folder / 'nginx.pid'};\n"
        f"error_log {folder / 'logs' / 'error.log'} info;\n"
        "events { worker_connections 1024; }\n"
        "http {\n"
        f"{temp_paths}\n"
        f"    include {site};\n"
        "}\n"
    )


@contextmanager
def nginx_proxy(
    folder: Path, upstream_ports: Sequence[int], host: str = "127.0.0.1", timeout: float = 10.0
) -> Iterator[NginxProxy]:
    """nginx with the shipped configuration, listening on ``host``, in front of
    ``upstream_ports`` on the same host; the proxy is yielded once its port accepts connections and stopped (SIGTERM) on exit."""
    if not Path(NGINX).exists():
        pytest.skip(f"{NGINX} is not installed (apt-get install nginx-light or nginx)")
    folder.mkdir(parents=True, exist_ok=True)
    for sub in ("logs", "tmp", "conf"):
        (folder / sub).mkdir(exist_ok=True)
    port = free_port(host)
    access_log = folder / "logs" / "access.log"
    site = folder / "conf" / "lanxi-dashboard.conf"
    conf_text = render(SHIPPED_CONF.read_text(), upstream_ports, f"{host}:{port}", access_log, host)
    site.write_text(conf_text)
    conf = folder / "conf" / "nginx.conf"
    conf.write_text(main_conf(folder, site))
    command = [NGINX, "-p", str(folder), "-c", str(conf), "-g", "daemon off;"]
    check = subprocess.run([*command, "-t"], capture_output=True, text=True, timeout=30)
    if check.returncode != 0:
        pytest.fail(f"nginx refuses the configuration:\n{check.stderr}\n{site.read_text()}")
    out = open(folder / "logs" / "nginx.out", "w+")  # noqa: SIM115 - closed in the teardown
    proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    proxy = NginxProxy(
        url=f"http://{host}:{port}",
        port=port,
        upstream_ports=tuple(upstream_ports),
        access_log=access_log,
        error_log=folder / "logs" / "error.log",
    )
    try:

        def listens() -> bool:
            with socket.create_connection((host, port), timeout=0.5):
                return True

        await_ready(proc, listens, folder / "logs" / "nginx.out", "nginx", timeout)
        yield proxy
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        out.close()


def route_to(proxy: NginxProxy, upstream: str, path: str = "/api/state") -> str:
    """A ``lanxi_route`` id nginx sends to ``upstream`` (``HOST:PORT``), found by asking
    through the proxy (``path``) with candidate ids and reading its access log."""
    import requests

    for n in range(64):
        route = f"to-{upstream}-{n}"
        requests.get(f"{proxy.url}{path}", cookies={"lanxi_route": route}, timeout=10)
        if {r.upstream for r in proxy.requests() if r.route == route} == {upstream}:
            return route
    raise AssertionError(f"no route id reaches {upstream}")
