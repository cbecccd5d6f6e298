"""A throw-away PostgreSQL server for the tuning tests (``postgres_server``), and the
``storage_url`` fixture that gives a test one study storage per backend (SQLite, PostgreSQL).

The server is the Debian package's (``apt-get install postgresql``, done by ``.ci/run``):
``initdb`` in a temporary data directory, ``pg_ctl start`` on a free loopback port with its
unix socket in that directory, trust authentication for one user, and ``pg_ctl stop`` plus
removal of the directory when the session ends. PostgreSQL refuses to run as root, so as root
the server runs as the ``postgres`` user (created by the package) through ``runuser``. Tests
that need it are skipped, with the reason, where the binaries or the driver are missing.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

_USER = "autoseg"
_INSTALL = "install it with: apt-get install -y postgresql (as .ci/run does)"


def postgres_bin_dir() -> Path | None:
    """The folder of ``initdb`` and ``pg_ctl``: the newest ``/usr/lib/postgresql/*/bin``
    (Debian), else wherever ``initdb`` is on PATH; None when PostgreSQL is not installed."""

    def version(path: Path) -> tuple[int, ...]:
        return tuple(int(n) for n in re.findall(r"\d+", path.parent.parent.name)) or (0,)

    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=version)
    if found and (found[-1].parent / "pg_ctl").is_file():
        return found[-1].parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb and shutil.which("pg_ctl") else None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PostgresServer:
    """A running server: ``url(database)`` for SQLAlchemy, ``create_database()``."""

    bin_dir: Path
    folder: Path
    port: int
    as_user: tuple[str, ...]  # the command prefix that runs a binary as the server's owner

    @property
    def data_dir(self) -> Path:
        return self.folder / "data"

    def run(self, *command: str) -> subprocess.CompletedProcess[str]:
        """Run a server binary (as the server's owner); raises with its output on failure."""
        argv = [*self.as_user, str(self.bin_dir / command[0]), *command[1:]]
        done = subprocess.run(argv, capture_output=True, text=True, cwd=self.folder, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed:\n{done.stdout}\n{done.stderr}")
        return done

    def start(self) -> None:
        self.run("initdb", "-D", str(self.data_dir), "-U", _USER, "--auth=trust", "-E", "UTF8",
                 "--no-sync")  # fmt: skip
        options = (
            f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c max_connections=100"
        )
        log = str(self.folder / "server.log")
        self.run("pg_ctl", "-D", str(self.data_dir), "-l", log, "-w", "-t", "60", "-o", options,
                 "start")  # fmt: skip

    def stop(self) -> None:
        try:
            self.run("pg_ctl", "-D", str(self.data_dir), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)

    def url(self, database: str) -> str:
        return f"postgresql://{_USER}@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A new, empty database; returns its URL."""
        import psycopg

        name = f"tune_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(
            host="127.0.0.1", port=self.port, user=_USER, dbname="postgres", autocommit=True
        ) as connection:
            connection.execute(f"CREATE DATABASE {name}")
        return self.url(name)


def _owner_prefix(folder: Path) -> tuple[str, ...]:
    """How to run the server's binaries: directly, or (as root) as ``postgres``."""
    if os.geteuid() != 0:
        return ()
    try:
        owner = pwd.getpwnam("postgres")
    except KeyError:
        pytest.skip("running as root and there is no 'postgres' user to run PostgreSQL as")
    if shutil.which("runuser") is None:
        pytest.skip("running as root and runuser is missing: cannot run PostgreSQL as postgres")
    os.chown(folder, owner.pw_uid, owner.pw_gid)
    return ("runuser", "-u", "postgres", "--")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server for the session (see the module docstring); skipped without one."""
    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        pytest.skip(f"PostgreSQL server binaries (initdb, pg_ctl) not found; {_INSTALL}")
    pytest.importorskip("psycopg", reason="the PostgreSQL driver psycopg is not installed")
    folder = Path(tempfile.mkdtemp(prefix="autoseg-postgres-"))
    server = PostgresServer(bin_dir, folder, _free_port(), _owner_prefix(folder))
    try:
        server.start()
    except BaseException:
        log = folder / "server.log"
        print(log.read_text() if log.is_file() else "(no server log)")
        shutil.rmtree(folder, ignore_errors=True)
        raise
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def storage_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty Optuna storage: a SQLite file, or a new database on ``postgres_server``."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'study.sqlite3'}"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.create_database()
