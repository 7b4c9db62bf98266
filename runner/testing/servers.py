"""Throw-away Postgres and Redis servers on loopback, for tests and benchmarks of a team setup.

Each gets a port and a data folder of its own and is stopped (folder removed) on exit; nothing touches a
system service. They need Debian's `postgresql` and `redis-server` packages (scripts/setup installs them).
Postgres refuses to run as root, so as root its data folder is given to the `postgres` system user the
Debian package creates, and the server runs as that user.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import random
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path


class ServerMissing(RuntimeError):
    """The server program is not installed."""


def free_port() -> int:
    """A free loopback port to hand to a server another process starts (or to name as one nobody listens on).

    Not one `bind(0)` gives: those come from the range the system also gives every outgoing connection its local
    port from, and under 4 test processes a connection took such a port between the probe and the server's bind
    ("Address already in use"). Below that range no connection is given one; the pick is random, so test
    processes side by side rarely try the same port, and it is checked free."""
    below = _ephemeral_start()
    pick = random.SystemRandom()
    for _ in range(200):
        port = pick.randrange(max(1024, below - 20_000), below)
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as probe:  # everything tried was taken: the system's pick
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _ephemeral_start() -> int:
    """Where the system's range for outgoing connections starts (Linux: 32768 unless configured; elsewhere
    49152 or more, so 32768 is below it too)."""
    try:
        return max(2048, int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0]))
    except (OSError, ValueError, IndexError):
        return 32768


def _wait_for_port(port: int, timeout: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.05)
    tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
    raise RuntimeError(f"{what} did not start on port {port} within {timeout:.0f} s:\n{tail}")


def postgres_bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"))
    if not found:
        raise ServerMissing("Postgres is not installed (Debian package `postgresql`; scripts/setup installs it)")
    return Path(found[-1]).parent


class PostgresServer:
    """`with PostgresServer() as pg: pg.new_database()` → a postgresql:// URL of an empty database."""

    def __init__(self) -> None:
        self.port = free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="playbook-pg-"))
        self.data = self.folder / "data"
        self.log = self.folder / "server.log"
        self._user: list[str] = []

    def __enter__(self) -> PostgresServer:
        bindir = postgres_bin()
        if os.geteuid() == 0:  # postgres will not run as root: hand it the folder and run as its own user
            owner = pwd.getpwnam("postgres")
            os.chown(self.folder, owner.pw_uid, owner.pw_gid)
            self._user = ["runuser", "-u", "postgres", "--"]
        subprocess.run([*self._user, str(bindir / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "playbook",
                        "-E", "UTF8", "--locale=C.UTF-8"], check=True, capture_output=True)
        self.start()
        return self

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://playbook@127.0.0.1:{self.port}/{database}"

    def stop(self) -> None:
        """`pg_ctl -m immediate stop`: every connection cut, as a crash or a failover does (the data stays)."""
        subprocess.run([*self._user, str(postgres_bin() / "pg_ctl"), "-D", str(self.data), "-m", "immediate",
                        "stop"], check=True, capture_output=True)

    def start(self) -> None:
        subprocess.run([*self._user, str(postgres_bin() / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w",
                        "-o", f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off "
                        "-c max_connections=200", "start"], check=True, capture_output=True)
        _wait_for_port(self.port, 30, "Postgres", self.log)

    def new_database(self) -> str:
        import psycopg

        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url(), autocommit=True) as admin:
            admin.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def __exit__(self, *exc: object) -> None:
        subprocess.run([*self._user, str(postgres_bin() / "pg_ctl"), "-D", str(self.data), "-m", "immediate",
                        "stop"], capture_output=True)
        shutil.rmtree(self.folder, ignore_errors=True)


class RedisServer:
    """`with RedisServer() as redis: redis.url(3)` → redis://127.0.0.1:<port>/3, no persistence."""

    def __init__(self) -> None:
        self.port = free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="playbook-redis-"))
        self.log = self.folder / "server.log"
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> RedisServer:
        program = shutil.which("redis-server") or "/usr/bin/redis-server"
        if not Path(program).exists():
            raise ServerMissing("Redis is not installed (Debian package `redis-server`; scripts/setup installs it)")
        with self.log.open("ab") as log:
            self._process = subprocess.Popen([program, "--port", str(self.port), "--bind", "127.0.0.1",
                                              "--dir", str(self.folder), "--save", "", "--appendonly", "no",
                                              "--databases", "64"], stdout=log, stderr=subprocess.STDOUT)
        _wait_for_port(self.port, 30, "Redis", self.log)
        return self

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def restart(self) -> None:
        """kill -9 and start again on the same port, empty (no persistence): what a crashed broker does."""
        if self._process is not None:
            self._process.kill()
            self._process.wait()
        self.__enter__()

    def __exit__(self, *exc: object) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait()
        shutil.rmtree(self.folder, ignore_errors=True)


@contextlib.contextmanager
def team_servers() -> Iterator[tuple[PostgresServer, RedisServer]]:
    with PostgresServer() as postgres, RedisServer() as redis:
        yield postgres, redis


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


class WorkerPool:
    """`playbook worker` processes for a project folder, each in its own process group so that `kill(i)` is a
    kill -9 of the whole worker (its pool processes too), as when a machine is lost."""

    def __init__(self, project: Path, env: dict[str, str] | None = None) -> None:
        self.project = project
        self.env = {**os.environ, **(env or {})}
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, *, concurrency: int = 1, queues: str | None = None,
              options: tuple[str, ...] = ()) -> subprocess.Popen[bytes]:
        """`options`: more of `playbook worker`'s options (`--metrics-port`, `--log-level` …)."""
        import sys

        log = (self.project / f"worker-{name}.log").open("ab")
        argv = [sys.executable, "-m", "runner", "worker", "--concurrency", str(concurrency), "--name",
                f"{name}@%h", *(["--queues", queues] if queues else []), *options]
        process = subprocess.Popen(argv, cwd=self.project, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        self.processes[name] = process
        return process

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        for name, process in self.processes.items():
            log = self.project / f"worker-{name}.log"
            while "ready." not in (log.read_text(errors="replace") if log.exists() else ""):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"worker {name} did not start:\n{log.read_text(errors='replace')[-3000:]}")
                time.sleep(0.1)

    def pids(self, name: str) -> set[int]:
        """The worker's main process and its pool processes."""
        main = self.processes[name].pid
        children = Path(f"/proc/{main}/task/{main}/children")
        found = {main}
        with contextlib.suppress(OSError):
            found |= {int(p) for p in children.read_text().split()}
        return found

    def kill(self, name: str) -> None:
        """kill -9 of the worker's process group; returns once all its processes are dead (its pool processes,
        orphaned, stay zombies where nobody reaps them)."""
        doomed = self.pids(name)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.processes[name].pid, 9)
        self.processes[name].wait()
        deadline = time.monotonic() + 10
        while any(_running(pid) for pid in doomed) and time.monotonic() < deadline:
            time.sleep(0.02)

    def stop(self, name: str, timeout: float = 60) -> int:
        """SIGTERM: Celery's warm shutdown (finish what it holds, take nothing new)."""
        process = self.processes[name]
        process.terminate()
        try:
            return process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill(name)
            return -9

    def close(self) -> None:
        for name in list(self.processes):
            self.kill(name)
