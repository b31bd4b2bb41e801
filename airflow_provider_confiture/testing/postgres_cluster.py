"""Throwaway PostgreSQL clusters started from the server binaries, for tests, the demo and benchmarks.

No Airflow imports here: this module must stay importable before Airflow's environment is configured.

A cluster lives in ``<base_dir>/<name>/``::

    data/            the data directory (initdb)
    sock/            unix socket directory (never /var/run)
    postgresql.log   server log (pg_ctl -l)

It listens on 127.0.0.1 only, with ``trust`` for local (unix socket) connections and ``scram-sha-256``
over TCP, so password authentication really happens on TCP connections (postgres_fdw for a non-superuser
requires the remote server to ask for a password). A cluster given ``tls=`` (:mod:`testing.tls`) serves
that certificate and accepts TCP connections over TLS only (``hostssl``).

When the current process runs as root (``initdb`` refuses root), the cluster directory is chowned to the
``postgres`` OS user and ``initdb``/``pg_ctl`` run through ``runuser -u postgres --``.
"""

from __future__ import annotations

import atexit
import glob
import os
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from airflow_provider_confiture.testing.tls import ServerTls

__all__ = [
    "ClusterDatabase",
    "PostgresCluster",
    "PostgresClusterError",
    "conninfo_quote",
    "free_port",
    "pg_bin_dir",
    "stop_all",
]

RUN_AS_USER = "postgres"
START_TIMEOUT_S = 60
STOP_TIMEOUT_S = 60
START_ATTEMPTS = 5
# Linux limit for a unix socket path (sun_path is 108 bytes, NUL included).
_MAX_SOCKET_PATH = 107

DEFAULT_SETTINGS: dict[str, Any] = {
    "listen_addresses": "127.0.0.1",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": 100,
    "shared_buffers": "256MB",
    "max_wal_size": "4GB",
    "checkpoint_timeout": "30min",
    "logging_collector": "off",
    "log_min_messages": "warning",
    "log_line_prefix": "%m [%p] %q%u@%d ",
    "password_encryption": "scram-sha-256",
    "timezone": "UTC",
}


_RUNNING: dict[int, PostgresCluster] = {}


def stop_all() -> None:
    """Stop every cluster this process started and has not stopped yet (before deleting their files)."""
    for cluster in list(_RUNNING.values()):
        try:
            cluster.stop()
        except Exception:  # noqa: BLE001 - best effort, keep stopping the others
            pass


class PostgresClusterError(RuntimeError):
    """A throwaway cluster could not be found, initialised, started or stopped."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (callers must still handle a race)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _has_server_binaries(d: Path) -> bool:
    return all(os.access(d / b, os.X_OK) for b in ("initdb", "pg_ctl", "postgres"))


def _version_key(path: str) -> tuple[int, ...]:
    ver = Path(path).parent.name
    return tuple(int(p) for p in re.findall(r"\d+", ver)) or (0,)


def pg_bin_dir() -> Path:
    """Directory holding initdb/pg_ctl/postgres/psql.

    ``$PG_BIN`` if set, else the highest version under /usr/lib/postgresql/*/bin, else
    ``pg_config --bindir``.
    """
    env = os.environ.get("PG_BIN")
    if env:
        d = Path(env)
        if not _has_server_binaries(d):
            raise PostgresClusterError(
                f"PG_BIN={env} does not contain executable initdb, pg_ctl and postgres"
            )
        return d
    for cand in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version_key, reverse=True):
        if _has_server_binaries(Path(cand)):
            return Path(cand)
    pg_config = shutil.which("pg_config")
    if pg_config:
        try:
            out = subprocess.run(
                [pg_config, "--bindir"], check=True, capture_output=True, text=True, timeout=30
            ).stdout.strip()
        except (subprocess.SubprocessError, OSError):
            out = ""
        if out and _has_server_binaries(Path(out)):
            return Path(out)
    raise PostgresClusterError(
        "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found: set PG_BIN to their directory, "
        "or run `make postgres` to install postgresql and postgresql-contrib."
    )


def conninfo_quote(value: Any) -> str:
    """Quote one value for a libpq key=value connection string."""
    s = str(value)
    if s and not re.search(r"[\s'\\]", s):
        return s
    return "'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"(no server log: {exc})"
    return "\n".join(text.splitlines()[-lines:])


def _conf_value(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, int | float):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


class PostgresCluster:
    """One throwaway PostgreSQL cluster (initdb + pg_ctl) listening on 127.0.0.1."""

    host = "127.0.0.1"

    def __init__(
        self,
        name: str,
        base_dir: Path | str,
        *,
        port: int | None = None,
        superuser: str = "confiture",
        password: str | None = None,
        settings: Mapping[str, Any] | None = None,
        bin_dir: Path | str | None = None,
        tls: ServerTls | None = None,
    ) -> None:
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
            raise ValueError(f"cluster name must be a simple file name, got {name!r}")
        self.name = name
        self.base_dir = Path(base_dir).absolute()
        self.dir = self.base_dir / name
        self.data_dir = self.dir / "data"
        self.log_file = self.dir / "postgresql.log"
        self._fixed_port = port
        self.port: int = port or 0
        self.superuser = superuser
        self.password = password if password is not None else secrets.token_urlsafe(18)
        self.settings: dict[str, Any] = {**DEFAULT_SETTINGS, **(settings or {})}
        self._bin_dir = Path(bin_dir) if bin_dir else None
        self.tls = tls
        self._as_root = os.geteuid() == 0
        self._socket_dir: Path | None = None
        self._own_socket_tmp: Path | None = None
        self._started = False
        self._atexit_registered = False

    # ----------------------------------------------------------------- paths and properties
    @property
    def bin_dir(self) -> Path:
        if self._bin_dir is None:
            self._bin_dir = pg_bin_dir()
        return self._bin_dir

    @property
    def psql_path(self) -> Path:
        return self.bin_dir / "psql"

    @property
    def socket_dir(self) -> Path:
        if self._socket_dir is None:
            sock = self.dir / "sock"
            if len(str(sock / ".s.PGSQL.65535.lock")) > _MAX_SOCKET_PATH:
                # Too long for a unix socket path: fall back to a short private temp directory.
                self._own_socket_tmp = Path(tempfile.mkdtemp(prefix=f"pgsock-{self.name}-"))
                sock = self._own_socket_tmp
            self._socket_dir = sock
        return self._socket_dir

    @property
    def running(self) -> bool:
        return self._started

    def __repr__(self) -> str:
        state = "running" if self._started else "stopped"
        return f"<PostgresCluster {self.name} {self.host}:{self.port} {state} dir={self.dir}>"

    # ----------------------------------------------------------------- connection strings
    def conninfo(self, dbname: str = "postgres", user: str | None = None, password: str | None = None) -> str:
        """libpq key=value connection string for a TCP (password-authenticated) connection."""
        if user is None:
            user = self.superuser
            if password is None:
                password = self.password
        parts = {"host": self.host, "port": self.port, "dbname": dbname, "user": user}
        if password is not None:
            parts["password"] = password
        return " ".join(f"{k}={conninfo_quote(v)}" for k, v in parts.items())

    def uri(self, dbname: str = "postgres", user: str | None = None, password: str | None = None) -> str:
        """postgresql:// URI (percent-encoded) for a TCP connection."""
        if user is None:
            user = self.superuser
            if password is None:
                password = self.password
        auth = quote(user, safe="")
        if password is not None:
            auth += ":" + quote(password, safe="")
        return f"postgresql://{auth}@{self.host}:{self.port}/{quote(dbname, safe='')}"

    def connect(  # type: ignore[no-untyped-def]  # psycopg imported lazily: no Airflow-free import here
        self,
        dbname: str = "postgres",
        autocommit: bool = True,
        *,
        user: str | None = None,
        password: str | None = None,
        **kwargs: Any,
    ):
        """A psycopg 3 connection over TCP (password authentication)."""
        import psycopg

        return psycopg.connect(self.conninfo(dbname, user, password), autocommit=autocommit, **kwargs)

    def execute(
        self, sql: Any, params: Any = None, *, dbname: str = "postgres"
    ) -> list[tuple[Any, ...]] | None:
        """Run one statement in autocommit mode on a fresh connection; rows if it returned any."""
        with self.connect(dbname) as conn, conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall() if cur.description is not None else None

    def create_database(self, name: str, *, owner: str | None = None, template: str = "template0") -> str:
        from psycopg import sql

        stmt = sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
            sql.Identifier(name), sql.Identifier(template)
        )
        if owner:
            stmt = sql.SQL("{} OWNER {}").format(stmt, sql.Identifier(owner))
        self.execute(stmt)
        return name

    def drop_database(self, name: str, *, missing_ok: bool = True) -> None:
        from psycopg import sql

        self.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        )
        if_exists = sql.SQL("IF EXISTS ") if missing_ok else sql.SQL("")
        self.execute(sql.SQL("DROP DATABASE {}{} WITH (FORCE)").format(if_exists, sql.Identifier(name)))

    # ----------------------------------------------------------------- lifecycle
    def _cmd(self, args: Iterable[str | os.PathLike[str]]) -> list[str]:
        words = [str(a) for a in args]
        if self._as_root:
            return ["runuser", "-u", RUN_AS_USER, "--", *words]
        return words

    def _run(
        self, args: Iterable[str | os.PathLike[str]], timeout: float
    ) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C"
        return subprocess.run(
            self._cmd(args),
            cwd=self.dir,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def _chown(self, path: Path) -> None:
        if self._as_root:
            shutil.chown(path, RUN_AS_USER, RUN_AS_USER)

    def _init(self) -> None:
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.dir.mkdir(exist_ok=True)
        self._chown(self.dir)
        if self._as_root:
            probe = subprocess.run(["runuser", "-u", RUN_AS_USER, "--", "test", "-w", str(self.dir)])
            if probe.returncode != 0:
                raise PostgresClusterError(
                    f"OS user {RUN_AS_USER!r} cannot write {self.dir}: a parent directory is not "
                    "traversable by it; use a base_dir under a world-readable path (e.g. /tmp)"
                )
        self.socket_dir.mkdir(mode=0o700, exist_ok=True)
        self._chown(self.socket_dir)
        if (self.data_dir / "PG_VERSION").exists():
            return
        pwfile = self.dir / f".pw-{uuid.uuid4().hex}"
        fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(self.password + "\n")
        self._chown(pwfile)
        try:
            res = self._run(
                [
                    self.bin_dir / "initdb",
                    "-D", self.data_dir,
                    "-U", self.superuser,
                    f"--pwfile={pwfile}",
                    "--auth-local=trust",
                    "--auth-host=scram-sha-256",
                    "--encoding=UTF8",
                    "--locale=C",
                    "--no-sync",
                ],
                timeout=120,
            )  # fmt: skip
        finally:
            pwfile.unlink(missing_ok=True)
        if res.returncode != 0:
            raise PostgresClusterError(
                f"initdb failed for cluster {self.name!r}:\n{res.stdout}\n{res.stderr}"
            )
        conf = self.data_dir / "postgresql.conf"
        with conf.open("a") as f:
            f.write(
                "\n# throwaway test cluster (airflow_provider_confiture.testing)\ninclude 'confiture.conf'\n"
            )

    def _write_settings(self) -> None:
        settings = dict(self.settings)
        settings["port"] = self.port
        settings["unix_socket_directories"] = str(self.socket_dir)
        if self.tls is not None:
            settings.update(self._write_tls(self.tls))
        path = self.data_dir / "confiture.conf"
        path.write_text("".join(f"{k} = {_conf_value(v)}\n" for k, v in settings.items()))
        self._chown(path)

    def _write_tls(self, tls: ServerTls) -> dict[str, Any]:
        """Certificate and key under ``<dir>/tls/`` (the key 0600, owned by the server's OS user), and a
        pg_hba.conf accepting TCP connections over TLS only (``hostssl``, no ``host`` line)."""
        tls_dir = self.dir / "tls"
        tls_dir.mkdir(mode=0o700, exist_ok=True)
        self._chown(tls_dir)
        cert, key = tls_dir / "server.crt", tls_dir / "server.key"
        cert.write_bytes(tls.cert_pem)
        key.touch(mode=0o600)
        key.chmod(0o600)
        key.write_bytes(tls.key_pem)
        for path in (cert, key):
            self._chown(path)
        hba = self.data_dir / "pg_hba.conf"
        hba.write_text(
            "# throwaway TLS-only test cluster: unix socket trusted, TCP over TLS only\n"
            "local all all trust\n"
            "local replication all trust\n"
            "hostssl all all 127.0.0.1/32 scram-sha-256\n"
            "hostssl all all ::1/128 scram-sha-256\n"
        )
        self._chown(hba)
        return {"ssl": True, "ssl_cert_file": str(cert), "ssl_key_file": str(key)}

    def start(self) -> PostgresCluster:
        """initdb (first time only) and start the server; returns when it accepts connections."""
        if self._started:
            return self
        self._init()
        attempts = 1 if self._fixed_port else START_ATTEMPTS
        last_error = ""
        for _ in range(attempts):
            if not self._fixed_port:
                self.port = free_port()
            self._write_settings()
            log_offset = self.log_file.stat().st_size if self.log_file.exists() else 0
            res = self._run(
                [
                    self.bin_dir / "pg_ctl",
                    "-D", self.data_dir,
                    "-l", self.log_file,
                    "-w", "-t", str(START_TIMEOUT_S),
                    "start",
                ],
                timeout=START_TIMEOUT_S + 30,
            )  # fmt: skip
            if res.returncode == 0:
                self._started = True
                _RUNNING[id(self)] = self
                if not self._atexit_registered:
                    atexit.register(self.stop)
                    self._atexit_registered = True
                return self
            log = self.log_file.read_text(errors="replace")[log_offset:] if self.log_file.exists() else ""
            last_error = f"{res.stdout}\n{res.stderr}\n--- server log tail ---\n" + "\n".join(
                log.splitlines()[-40:]
            )
            # A half-started server would block the retry; make sure nothing is left running.
            self._pg_ctl_stop("immediate")
            if "could not bind" not in log and "Address already in use" not in log:
                break
        raise PostgresClusterError(
            f"PostgreSQL cluster {self.name!r} failed to start (port {self.port}):\n{last_error}"
        )

    def _pg_ctl_stop(self, mode: str) -> subprocess.CompletedProcess[str] | None:
        if not (self.data_dir / "postmaster.pid").exists():
            return None
        return self._run(
            [
                self.bin_dir / "pg_ctl",
                "-D",
                self.data_dir,
                "-m",
                mode,
                "-w",
                "-t",
                str(STOP_TIMEOUT_S),
                "stop",
            ],
            timeout=STOP_TIMEOUT_S + 30,
        )

    def stop(self) -> None:
        """Fast shutdown; does nothing when the server is not running."""
        self._started = False
        _RUNNING.pop(id(self), None)
        if not self.data_dir.exists():
            return
        res = self._pg_ctl_stop("fast")
        if res is not None and res.returncode != 0 and (self.data_dir / "postmaster.pid").exists():
            res = self._pg_ctl_stop("immediate")
            if res is not None and res.returncode != 0 and (self.data_dir / "postmaster.pid").exists():
                raise PostgresClusterError(
                    f"could not stop cluster {self.name!r}: {res.stderr}\n{_tail(self.log_file)}"
                )

    def destroy(self) -> None:
        """Stop the server and remove the cluster's directory."""
        self.stop()
        if self._atexit_registered:
            atexit.unregister(self.stop)
            self._atexit_registered = False
        shutil.rmtree(self.dir, ignore_errors=True)
        if self._own_socket_tmp is not None:
            shutil.rmtree(self._own_socket_tmp, ignore_errors=True)

    def log_tail(self, lines: int = 40) -> str:
        return _tail(self.log_file, lines)

    def __enter__(self) -> PostgresCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass(frozen=True)
class ClusterDatabase:
    """One database on a :class:`PostgresCluster` (what the ``source_db``/``target_db`` fixtures yield)."""

    cluster: PostgresCluster
    dbname: str

    def connect(  # type: ignore[no-untyped-def]
        self, autocommit: bool = True, *, user: str | None = None, password: str | None = None, **kw: Any
    ):
        return self.cluster.connect(self.dbname, autocommit, user=user, password=password, **kw)

    def execute(self, sql: Any, params: Any = None) -> list[tuple[Any, ...]] | None:
        return self.cluster.execute(sql, params, dbname=self.dbname)

    def conninfo(self, user: str | None = None, password: str | None = None) -> str:
        return self.cluster.conninfo(self.dbname, user, password)

    def uri(self, user: str | None = None, password: str | None = None) -> str:
        return self.cluster.uri(self.dbname, user, password)

    @property
    def host(self) -> str:
        return self.cluster.host

    @property
    def port(self) -> int:
        return self.cluster.port
