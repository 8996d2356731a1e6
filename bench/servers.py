"""The servers under test, each configured the same way in front of one php-fpm pool.

Every server answers `Host: bench.localhost` only (nginx and Bulkhead answer 421 to other
hosts, Caddy an empty 200), serves the same document root, runs `*.php` through the same
php-fpm socket and serves other files itself. Logging is off or at warnings only. Where a
server's stock default would make the comparison unequal, the setting is changed and
named here:

- nginx: `keepalive_requests` raised from 1000 to 1000000, since the others do not close
  keep-alive connections after a fixed count; `worker_processes 2` (one per core).
- nginx-split is not a contender but a reference: nginx cut into two processes the way
  Bulkhead is (see `NginxSplit`), to show what the process boundary costs nginx itself.
- nginx 1.22 speaks h2c (prior knowledge) only on a `listen … http2` port, which then
  refuses HTTP/1.1, so nginx gets a second port for the HTTP/2 workload.
"""

from __future__ import annotations

import http.client
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from procs import Spawner

HOST = "bench.localhost"
BENCH_DIR = Path(__file__).resolve().parent
PHP_FPM = "/usr/sbin/php-fpm8.2"
NGINX = "/usr/sbin/nginx"
CADDY = "/usr/bin/caddy"
START_TIMEOUT = 30.0


# --- helpers -----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(port: int, path: str, host: str = HOST, method: str = "GET", body: bytes | None = None,
        timeout: float = 5.0) -> tuple[int, bytes]:
    """One HTTP/1.1 request on a fresh connection: (status, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers={"Host": host})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def wait_until(what: str, check, log: Path | None = None,
               proc: subprocess.Popen | None = None, timeout: float = START_TIMEOUT) -> None:
    """Polls `check` until it holds; fails with the end of `log` if `proc` exits first or
    the time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not (proc and proc.poll() is not None):
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.05)
    tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
    if proc and proc.poll() is not None:
        raise RuntimeError(f"{what} exited with status {proc.returncode}\n{tail}")
    raise RuntimeError(f"{what} not ready after {timeout:.0f}s\n{tail}")


def answers(port: int, path: str = "/hello.php", host: str = HOST) -> bool:
    return get(port, path, host=host, timeout=2.0)[0] == 200


# --- the document root -------------------------------------------------------------------

STATIC_1K = b"".join(b"%063d\n" % i for i in range(16))  # 1024 bytes
assert len(STATIC_1K) == 1024


def make_site(root: Path) -> Path:
    """The document root every server serves: the PHP scripts from bench/site and a 1 KiB
    static file. Readable by every uid (Bulkhead's workers run under their own)."""
    root.mkdir(parents=True, exist_ok=True)
    for script in (BENCH_DIR / "site").glob("*.php"):
        shutil.copy(script, root / script.name)
    (root / "static").mkdir(exist_ok=True)
    (root / "static" / "1k.txt").write_bytes(STATIC_1K)
    for path in [root, *root.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return root


# --- php-fpm -----------------------------------------------------------------------------


@dataclass
class PhpFpm:
    """One static pool on a Unix socket, shared by every server."""

    dir: Path
    children: int = 4
    proc: subprocess.Popen | None = None

    @property
    def socket(self) -> Path:
        return self.dir / "php.sock"

    def start(self, spawner: Spawner) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        conf = self.dir / "php-fpm.conf"
        conf.write_text(
            f"[global]\n"
            f"pid = {self.dir}/php-fpm.pid\n"
            f"error_log = {self.dir}/error.log\n"
            f"daemonize = no\n"
            f"\n"
            f"[bench]\n"
            f"listen = {self.socket}\n"
            f"listen.mode = 0666\n"
            f"listen.backlog = 4096\n"
            f"pm = static\n"
            f"pm.max_children = {self.children}\n"
            f"pm.max_requests = 0\n"
            f"clear_env = yes\n"
            f"security.limit_extensions = .php\n"
            f"catch_workers_output = yes\n"
            f"php_admin_value[post_max_size] = 4M\n"
        )
        log = self.dir / "stdio.log"
        self.proc = spawner.start([PHP_FPM, "-F", "-R", "-y", str(conf), "-p", str(self.dir)], log)
        wait_until("php-fpm", self._accepts, log=self.dir / "error.log", proc=self.proc)

    def _accepts(self) -> bool:
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(str(self.socket))
        return True


# --- the servers -------------------------------------------------------------------------


@dataclass
class Server:
    """A server under test: where it listens, how to start it, its process tree's root."""

    name: str
    dir: Path
    site: Path
    fpm_socket: Path
    tls: tuple[Path, Path] | None = None  # (certificate, key) to serve HTTPS with
    port: int = field(default_factory=free_port)
    h2_port: int = 0  # where h2c with prior knowledge is served (0: on `port`)
    tls_port: int | None = None
    proc: subprocess.Popen | None = None
    keepalive: int = 0  # keep-alive FastCGI connections to php-fpm (0: one per request)

    def __post_init__(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.h2_port = self.h2_port or self.port
        if self.tls:
            self.tls_port = free_port()

    @property
    def log(self) -> Path:
        return self.dir / "server.log"

    @property
    def tls_skip_reason(self) -> str | None:
        """Why this server cannot run the HTTPS workload, or None if it can."""
        return None

    def start(self, spawner: Spawner) -> None:
        self.proc = spawner.start(self.argv(), self.log, env=self.env())
        wait_until(self.name, lambda: answers(self.port), log=self.log, proc=self.proc)

    def argv(self) -> list[str]:
        raise NotImplementedError

    def env(self) -> dict:
        return dict(os.environ)


@dataclass
class Nginx(Server):
    def __post_init__(self) -> None:
        self.h2_port = free_port()
        super().__post_init__()

    def argv(self) -> list[str]:
        conf = self.dir / "nginx.conf"
        conf.write_text(self.config())
        return [NGINX, "-p", str(self.dir), "-c", str(conf), "-g", "daemon off;"]

    workers = 2

    def config(self) -> str:
        return self.client_facing(workers=self.workers, pid="nginx.pid",
                                  upstream=self.fastcgi_upstream(), site=self.site_settings())

    def fastcgi_upstream(self) -> str:
        """With keep-alive, php-fpm as an upstream whose workers keep `keepalive / 2` idle
        connections in all. nginx opens connections past its idle cache, and those wait
        in php-fpm's accept queue behind children held by idle ones: with `keepalive` in
        all (as many as the pool's children), hello's p99 went to 1-2 s with timeouts;
        with half, nginx ran 8% faster than without keep-alive."""
        if not self.keepalive:
            return ""
        per_worker = max(1, self.keepalive // (2 * self.workers))
        return f"""
    upstream php_fpm {{
        server unix:{self.fpm_socket};
        keepalive {per_worker};
    }}"""

    def client_facing(self, workers: int, pid: str, upstream: str, site: str) -> str:
        """The config of an nginx that listens for clients: 421 for unknown hosts, `site`
        for bench.localhost over HTTP/1.1, h2c and TLS."""
        d = self.dir
        tls = ""
        if self.tls:
            # nginx 1.22 offers TLS 1.2 only unless told otherwise; Bulkhead and Caddy
            # speak 1.3, whose resumption costs a key exchange that 1.2's does not.
            tls = (f"listen 127.0.0.1:{self.tls_port} ssl;\n"
                   f"        ssl_protocols TLSv1.2 TLSv1.3;\n"
                   f"        ssl_certificate {self.tls[0]};\n"
                   f"        ssl_certificate_key {self.tls[1]};")
        return f"""\
worker_processes {workers};
pid {d}/{pid};
error_log {d}/error.log warn;
events {{ worker_connections 4096; }}
http {{
{self.http_settings()}{upstream}
    server {{
        listen 127.0.0.1:{self.port} default_server;
        listen 127.0.0.1:{self.h2_port} http2 default_server;
        return 421;
    }}
    server {{
        listen 127.0.0.1:{self.port};
        listen 127.0.0.1:{self.h2_port} http2;
        {tls}
        server_name {HOST};
{site}
    }}
}}
"""

    def http_settings(self) -> str:
        d = self.dir
        return f"""\
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    client_max_body_size 2m;
    client_body_temp_path {d}/client_body;
    fastcgi_temp_path {d}/fastcgi;
    proxy_temp_path {d}/proxy;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
"""

    def site_settings(self) -> str:
        """The document root, and `*.php` to php-fpm."""
        return f"""\
        root {self.site};
        index index.php index.html;
        location ~ \\.php$ {{
            try_files $uri =404;
            include /etc/nginx/fastcgi.conf;
            {self.fastcgi_pass()}
        }}"""

    def fastcgi_pass(self) -> str:
        if self.keepalive:
            return "fastcgi_pass php_fpm;\n            fastcgi_keep_conn on;"
        return f"fastcgi_pass unix:{self.fpm_socket};"


@dataclass
class NginxSplit(Nginx):
    """nginx cut in two along Bulkhead's line, as a reference for what a process boundary
    costs: a front nginx (one worker) speaks to clients, answers unknown hosts and
    terminates TLS; it proxies every request over HTTP/1.1 keep-alive connections on a
    Unix socket to a back nginx (one worker) that serves the files and talks to php-fpm.
    One worker each, as Bulkhead runs one gateway thread and one worker thread here (the
    best of 1+1, 1+2, 2+1 and 2+2 for the PHP workload on this machine). The front streams
    bodies both ways (`proxy_request_buffering off`, `proxy_buffering off` with a 64 KiB
    buffer: the 4 KiB default halves its 100 KiB-page throughput), as Bulkhead's gateway does; the back buffers them for php-fpm, as nginx and Bulkhead's worker do."""

    workers = 1  # each, front and back

    @property
    def back_socket(self) -> Path:
        return self.dir / "back.sock"

    def argv(self) -> list[str]:
        front, back = self.dir / "front.conf", self.dir / "back.conf"
        front.write_text(self.config())
        back.write_text(self.back_config())
        # One process tree: the back's master is a child of the front's. umask 0 lets the
        # front's workers (user nobody) connect to the back's socket.
        script = (f"umask 000; {NGINX} -p {self.dir} -c {back} -g 'daemon off;' & "
                  f"exec {NGINX} -p {self.dir} -c {front} -g 'daemon off;'")
        return ["/bin/sh", "-c", script]

    def config(self) -> str:
        upstream = f"""
    upstream back {{
        server unix:{self.back_socket};
        keepalive 64;
        keepalive_requests 1000000;
    }}"""
        proxy = """\
        location / {
            proxy_pass http://back;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_request_buffering off;
            proxy_buffering off;
            proxy_buffer_size 64k;
            proxy_buffers 4 64k;  # only so that the default busy-buffers size validates
        }"""
        return self.client_facing(workers=self.workers, pid="front.pid", upstream=upstream,
                                  site=proxy)

    def back_config(self) -> str:
        d = self.dir
        return f"""\
worker_processes {self.workers};
pid {d}/back.pid;
error_log {d}/error.log warn;
events {{ worker_connections 4096; }}
http {{
{self.http_settings()}{self.fastcgi_upstream()}
    server {{
        listen unix:{self.back_socket};
{self.site_settings()}
    }}
}}
"""


@dataclass
class Caddy(Server):
    def argv(self) -> list[str]:
        conf = self.dir / "Caddyfile"
        conf.write_text(self.config())
        return [CADDY, "run", "--config", str(conf), "--adapter", "caddyfile"]

    def env(self) -> dict:
        home = str(self.dir)
        return {**os.environ, "HOME": home, "XDG_CONFIG_HOME": home, "XDG_DATA_HOME": home}

    def config(self) -> str:
        site = f"""\
    bind 127.0.0.1
    root * {self.site}
    php_fastcgi unix/{self.fpm_socket}
    file_server"""
        tls = ""
        if self.tls:
            tls = f"""
https://{HOST}:{self.tls_port} {{
    tls {self.tls[0]} {self.tls[1]}
{site}
}}
"""
        return f"""\
{{
    admin off
    auto_https off
    default_sni {HOST}
    log {{
        level WARN
    }}
    servers {{
        protocols h1 h2 h2c
    }}
}}

http://{HOST}:{self.port} {{
{site}
}}
{tls}"""


@dataclass
class Bulkhead(Server):
    """The broker, which spawns the gateway, the keyholder and one worker per app.

    With `with_tls` (and a certificate), the config gets `listen_tls` and the app's `tls`,
    unless `bulkhead check` refuses them (a build without TLS support); without
    `listen_tls` the HTTPS workload is skipped, with the reason printed."""

    binary: Path = Path("target/release/bulkhead")
    with_tls: bool = True
    apps: list[tuple[str, Path]] = field(default_factory=list)  # extra (name, root) apps
    tls_refused: str = ""  # why `bulkhead check` refused the TLS settings, if it did
    on_demand: bool = False  # extra apps start their worker at their first request

    def __post_init__(self) -> None:
        if not self.with_tls:
            self.tls = None
        super().__post_init__()

    @property
    def tls_skip_reason(self) -> str | None:
        if self.tls_port is not None:
            return None
        reason = "skipped: bulkhead has no TLS listener yet"
        if self.tls_refused:
            reason += f" (`bulkhead check` refused listen_tls: {self.tls_refused})"
        return reason

    def start(self, spawner: Spawner) -> None:
        if self.tls_port is not None:
            self.tls_refused = self._check_refusal()
            if self.tls_refused:
                self.tls, self.tls_port = None, None
        super().start(spawner)

    def _check_refusal(self) -> str:
        """The first problem `bulkhead check` finds in this config, or "" if it is valid."""
        conf = self.dir / "bulkhead-check.toml"
        conf.write_text(self.config())
        proc = subprocess.run([str(self.binary), "check", "--config", str(conf)],
                              capture_output=True, text=True)
        if proc.returncode == 0:
            return ""
        problems = [line.strip() for line in proc.stderr.splitlines()[1:] if line.strip()]
        return problems[0] if problems else f"exit status {proc.returncode}"

    def argv(self) -> list[str]:
        conf = self.dir / "bulkhead.toml"
        conf.write_text(self.config())
        return [str(self.binary), "run", "--config", str(conf)]

    def env(self) -> dict:
        return {**os.environ, "RUST_LOG": "warn"}

    def config(self) -> str:
        lines = [f'listen = ["127.0.0.1:{self.port}"]']
        if self.tls_port is not None:
            lines.append(f'listen_tls = ["127.0.0.1:{self.tls_port}"]')
        apps = self.apps or [("bench", self.site)]
        for name, root in apps:
            host = HOST if name == "bench" else f"{name}.localhost"
            lines += [
                "",
                "[[app]]",
                f'name = "{name}"',
                f'hosts = ["{host}"]',
                f'root = "{root}"',
                'index = ["index.php", "index.html"]',
                f'fastcgi = "unix:{self.fpm_socket}"',
            ]
            if self.tls:
                lines.append(f'tls = {{ cert = "{self.tls[0]}", key = "{self.tls[1]}" }}')
            if self.on_demand and name != "bench":
                lines.append("on_demand = true")
            if self.keepalive:
                lines.append(f"fastcgi_keepalive = {self.keepalive}")
            lines += ["[app.limits]", 'max_body = "2M"']
        return "\n".join(lines) + "\n"


def make_certificate(dir: Path) -> tuple[Path, Path]:
    """A self-signed ECDSA P-256 certificate for bench.localhost (and 127.0.0.1)."""
    cert, key = dir / "cert.pem", dir / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-days", "2", "-subj", f"/CN={HOST}",
         "-addext", f"subjectAltName=DNS:{HOST},IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    key.chmod(0o644)  # nginx reads it as root, but Caddy and Bulkhead may not
    return cert, key
