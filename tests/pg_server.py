"""A throwaway PostgreSQL server for the tests: temporary directory, loopback only, no fsync."""

from __future__ import annotations

import atexit
import glob
import importlib.util
import os
import pwd
import shlex
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

USER = "vitbench"  # the superuser initdb creates; trust authentication, no password
SYSTEM_USER = "postgres"  # who runs the server when we are root (initdb refuses root)
SERVER_SETTINGS = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "200",
}
INITDB_OPTIONS = ("-E", "UTF8", "--locale=C", "--no-sync")  # --no-sync: initdb skips fsync too


def pg_binaries() -> tuple[str, str] | None:
    """Paths of `initdb` and `pg_ctl`, from PATH or the newest /usr/lib/postgresql/*/bin."""
    found = shutil.which("initdb"), shutil.which("pg_ctl")
    if all(found):
        return found[0], found[1]
    for bindir in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version_key, reverse=True):
        initdb, pg_ctl = Path(bindir, "initdb"), Path(bindir, "pg_ctl")
        if initdb.is_file() and pg_ctl.is_file():
            return str(initdb), str(pg_ctl)
    return None


def _version_key(bindir: str) -> tuple[int, str]:
    version = Path(bindir).parent.name
    return (int(version) if version.isdigit() else -1, version)


def _as_root() -> bool:
    return os.geteuid() == 0


def _system_user() -> pwd.struct_passwd | None:
    try:
        return pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        return None


def skip_reason() -> str | None:
    """Why the PostgreSQL tests cannot run on this machine, or None when they can."""
    if pg_binaries() is None:
        return "PostgreSQL binaries (initdb, pg_ctl) not found on PATH or in /usr/lib/postgresql"
    if importlib.util.find_spec("psycopg") is None:
        return "psycopg is not installed"
    if _as_root() and _system_user() is None:
        return f"running as root and there is no {SYSTEM_USER!r} user to run initdb as"
    if _as_root() and shutil.which("runuser") is None:
        return "running as root and `runuser` is not available"
    return None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PostgresServer:
    """One PostgreSQL cluster in a fresh temporary directory, listening on 127.0.0.1 only."""

    def __init__(self) -> None:
        self.port: int | None = None
        self._dir: Path | None = None
        self._pg_ctl = "pg_ctl"
        self._watchdog: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        """Whether start() succeeded and stop() has not run since."""
        return self._dir is not None

    def start(self) -> None:
        """initdb a new cluster and start it; raises RuntimeError with the log on failure."""
        if self.running:
            return
        binaries = pg_binaries()
        if binaries is None:
            raise RuntimeError("PostgreSQL binaries (initdb, pg_ctl) not found")
        initdb, self._pg_ctl = binaries
        self._dir = Path(tempfile.mkdtemp(prefix="vitbench-pg-"))
        atexit.register(self.stop)
        try:
            self._start_watchdog()
            self._prepare_directory()
            self._run(initdb, "-D", str(self._data), "-A", "trust", "-U", USER, *INITDB_OPTIONS)
            self._start_postmaster()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop the server at once and remove its directory; safe to call more than once."""
        if self._dir is None:
            return
        atexit.unregister(self.stop)
        if (self._data / "postmaster.pid").exists():
            self._run(*self._stop_command(), check=False)
        shutil.rmtree(self._dir, ignore_errors=True)
        self._dir = self.port = None
        self._end_watchdog()

    def url(self, dbname: str) -> str:
        """SQLAlchemy URL of database `dbname` on this server."""
        if self.port is None:
            raise RuntimeError("the PostgreSQL server is not running")
        return f"postgresql+psycopg://{USER}@127.0.0.1:{self.port}/{dbname}"

    def create_database(self, name: str) -> str:
        """Create an empty database `name` and return its SQLAlchemy URL."""
        import psycopg
        from psycopg import sql

        conninfo = f"host=127.0.0.1 port={self.port} user={USER} dbname=postgres"
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(name)

    def _start_postmaster(self, attempts: int = 3) -> None:
        """pg_ctl start on a free port, retrying if another process took the port meanwhile."""
        for attempt in range(1, attempts + 1):
            self.port = free_port()
            options = ["-w", "-t", "60", "-l", str(self._log), "-o", self._server_options()]
            try:
                self._run(self._pg_ctl, "-D", str(self._data), *options, "start")
                return
            except RuntimeError:
                if attempt == attempts:
                    raise

    def _stop_command(self) -> list[str]:
        return [self._pg_ctl, "-D", str(self._data), "-m", "immediate", "stop"]

    def _start_watchdog(self) -> None:
        """A sidecar shell that stops the server when this process dies, even by SIGKILL.

        It waits for end of file on a pipe that only this process writes to; the kernel closes
        the pipe however the process ends, where atexit covers normal exits only.
        """
        stop = shlex.join(self._as_system_user(self._stop_command()))
        directory = shlex.quote(str(self._directory))
        script = f"cat >/dev/null; {stop} >/dev/null 2>&1; rm -rf {directory}"
        self._watchdog = subprocess.Popen(
            ["sh", "-c", script], stdin=subprocess.PIPE, start_new_session=True
        )

    def _end_watchdog(self) -> None:
        """Release the watchdog (its work is already done) and reap it."""
        if self._watchdog is None:
            return
        watchdog, self._watchdog = self._watchdog, None
        if watchdog.stdin is not None:
            watchdog.stdin.close()
        watchdog.wait(timeout=30)

    @property
    def _data(self) -> Path:
        return self._directory / "data"

    @property
    def _log(self) -> Path:
        return self._directory / "postgres.log"

    @property
    def _directory(self) -> Path:
        if self._dir is None:
            raise RuntimeError("the PostgreSQL server is not running")
        return self._dir

    def _prepare_directory(self) -> None:
        """Hand the directory to the `postgres` user when we are root."""
        if not _as_root():
            return
        user = _system_user()
        if user is None:
            raise RuntimeError(f"running as root and there is no {SYSTEM_USER!r} user")
        os.chown(self._directory, user.pw_uid, user.pw_gid)

    def _server_options(self) -> str:
        """The `-o` string pg_ctl hands to postgres (through a shell, hence the quoting)."""
        settings = {
            "listen_addresses": "127.0.0.1",
            "port": str(self.port),
            "unix_socket_directories": str(self._directory),
            **SERVER_SETTINGS,
        }
        return " ".join(f"-c {shlex.quote(f'{key}={value}')}" for key, value in settings.items())

    def _as_system_user(self, cmd: list[str]) -> list[str]:
        return ["runuser", "-u", SYSTEM_USER, "--", *cmd] if _as_root() else cmd

    def _run(self, *cmd: str, check: bool = True) -> None:
        """Run a PostgreSQL tool; on failure raise with its output and the server log."""
        argv = self._as_system_user(list(cmd))
        result = subprocess.run(argv, cwd=self._directory, capture_output=True, text=True)
        if check and result.returncode != 0:
            log = self._log.read_text(errors="replace")[-4000:] if self._log.exists() else ""
            raise RuntimeError(
                f"{Path(cmd[0]).name} failed ({result.returncode}):\n"
                f"{result.stdout}{result.stderr}\n{log}"
            )
