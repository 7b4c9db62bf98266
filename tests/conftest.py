"""Shared fixtures: a fake OpenAI-compatible server on loopback and a project folder pointing at it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# The tests read what the CLI and pages say in the default language, whatever this machine's locale; a test of
# another language gives it to its subprocess (`[ui] language` or LANGUAGE).
os.environ["LANGUAGE"] = "zh_CN"

from runner.assembly import assemble
from runner.config import load_project
from runner.dsl.inputs import resolve_inputs
from runner.dsl.validate import load_and_validate
from runner.engine.execute import RunOutcome
from runner.testing import FakeLLMServer
from tests.team import Team

ROOT = Path(__file__).resolve().parent.parent
SECRET = "sk-test-7f3a9c1e5b2d4a6f8e0c"


@pytest.fixture(autouse=True)
def interpreter_left_as_found() -> Iterator[None]:
    """A test that changes the interpreter for the rest of the session fails, naming itself: mypy run in-process
    raised the recursion limit 16 times and a later test's hostile template took 44 s instead of half a second."""
    limit = sys.getrecursionlimit()
    yield
    if sys.getrecursionlimit() != limit:
        changed = sys.getrecursionlimit()
        sys.setrecursionlimit(limit)
        pytest.fail(f"this test changed the recursion limit from {limit} to {changed}; run what does it in a "
                    "subprocess")


@pytest.fixture(autouse=True)
def observers_off() -> Iterator[None]:
    """A test that turned on this process's logs or metrics (a served app counts its runs) turns them off again, so
    the next test's runs are not counted or logged by hooks it never asked for."""
    yield
    from runner import observe

    observe.reset()


@pytest.fixture
def english(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Messages in English, in this process and the commands it starts: for tests that check what a message says
    (the catalog test and the corpus checks keep the Chinese complete)."""
    from runner import i18n

    monkeypatch.setenv("LANGUAGE", "en")
    i18n.use("en")
    yield
    i18n.use(None)


@pytest.fixture
def server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as fake:
        yield fake


@pytest.fixture
def project_dir(tmp_path: Path, server: FakeLLMServer, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project whose `default` model is the fake server, with a key that must never leak."""
    (tmp_path / "playbook.toml").write_text(server.toml(input_price=2.0, output_price=8.0),
                                            encoding="utf-8")
    monkeypatch.setenv("FAKE_LLM_API_KEY", SECRET)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def allow_loopback(project_dir: Path) -> None:
    """Let the project's web tools reach loopback, where the tests serve their pages (refused by default)."""
    with (project_dir / "playbook.toml").open("a", encoding="utf-8") as toml:
        toml.write('\n[web]\nallow_private = ["127.0.0.1"]\n')


def allow_images(project_dir: Path) -> None:
    """Mark the project's `default` model (the fake server) as one that takes images."""
    with (project_dir / "playbook.toml").open("a", encoding="utf-8") as toml:
        toml.write("vision = true\n")  # still inside [models.default], the file's last table


def write_playbook(folder: Path, text: str, name: str = "pb.yaml") -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


# a draft, its approval, a step after it: the smallest playbook that pauses
REVIEWED = """
name: reviewed
steps:
  - {id: draft, llm: {prompt: 写一段总结}}
  - id: review
    approval: {title: 审核总结, show: "${{ steps.draft.output }}"}
  - {id: publish, llm: {prompt: "下游发布：${{ steps.review.output }}"}}
outputs: {text: "${{ steps.publish.output }}"}
"""


def write_summary_child(folder: Path) -> Path:
    """`child.yaml`: a one-step sub-playbook that asks the model to summarise `inputs.topic` (prompt 总结 …)."""
    return write_playbook(folder, """
name: child
inputs: {topic: {type: string}}
steps:
  - {id: s, llm: {prompt: "总结 ${{ inputs.topic }}"}}
outputs: {summary: "${{ steps.s.output }}"}
""", "child.yaml")


def run_playbook(path: Path, inputs: dict[str, Any] | None = None, **kwargs: Any) -> RunOutcome:
    playbook = load_and_validate(path)
    runner = assemble(load_project())
    try:
        values = resolve_inputs(playbook.spec, inputs or {}, file=str(path))
        return asyncio.run(runner.start(playbook, values, **kwargs))
    finally:
        runner.close()


def resume(run_id: str, **kwargs: Any) -> RunOutcome:
    runner = assemble(load_project())
    try:
        return asyncio.run(runner.resume(run_id, **kwargs))
    finally:
        runner.close()


def cli(*args: str, cwd: Path, env: dict[str, str] | None = None,
        timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run the real `playbook` command in a subprocess."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "runner", *args], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


API_TOKEN = "served-project-token"
API_HEADERS = {"Authorization": f"Bearer {API_TOKEN}"}  # what a script using the API's writes sends


@contextlib.contextmanager
def served_project(project_dir: Path, *playbooks: str) -> Iterator[str]:
    """`playbook serve` on a free loopback port for a project holding copies of the shipped `playbooks`, its token
    API_TOKEN; yields the base URL."""
    import shutil
    import threading
    import time

    import uvicorn

    from runner.server import create_app

    (project_dir / "playbooks").mkdir(exist_ok=True)
    for name in playbooks:
        shutil.copy(ROOT / "playbooks" / f"{name}.yaml", project_dir / "playbooks")
    os.environ["PLAYBOOK_SERVER_TOKEN"] = API_TOKEN  # the API's writes need it, from loopback too
    try:
        app = create_app(load_project())
    finally:
        del os.environ["PLAYBOOK_SERVER_TOKEN"]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)


def wait_status(base: str, run_id: str, status: str, timeout: float = 120) -> dict[str, Any]:
    """Poll the JSON API until the run has `status`."""
    import time

    import httpx

    deadline = time.time() + timeout
    run: dict[str, Any] = {}
    while time.time() < deadline:
        run = httpx.get(f"{base}/api/runs/{run_id}").json()
        if run["status"] == status:
            return run
        time.sleep(0.2)
    raise AssertionError(f"{run_id} stayed {run.get('status')}: {run.get('error')}")


# --- a team server's Postgres and Redis: real throw-away servers on loopback, one of each per test session ---

def _team_server(kind: str) -> Any:
    """Start the server, or skip the test when it is not installed — except where PLAYBOOK_TEAM_TESTS=require
    (CI sets it), where a missing server fails the run instead of silently testing less."""
    from runner.testing.servers import PostgresServer, RedisServer, ServerMissing

    try:
        return (PostgresServer if kind == "postgres" else RedisServer)().__enter__()
    except ServerMissing as exc:
        if os.environ.get("PLAYBOOK_TEAM_TESTS") == "require":
            raise
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Any]:
    server = _team_server("postgres")
    yield server
    server.__exit__(None, None, None)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[Any]:
    server = _team_server("redis")
    yield server
    server.__exit__(None, None, None)


@pytest.fixture
def postgres_url(postgres_server: Any) -> str:
    """An empty database of its own for this test."""
    return str(postgres_server.new_database())


_redis_dbs = iter(range(1, 64))


@pytest.fixture
def redis_url(redis_server: Any) -> str:
    """A Redis database number of its own for this test (a throw-away server has 64)."""
    return str(redis_server.url(next(_redis_dbs)))


@pytest.fixture
def team(project_dir: Path, server: FakeLLMServer, postgres_url: str, redis_url: str) -> Iterator[Team]:
    """The project on the throw-away Postgres and Redis, with `playbook worker` processes to start (tests/team.py)."""
    from runner.testing.servers import WorkerPool

    with (project_dir / "playbook.toml").open("a", encoding="utf-8") as toml:
        toml.write(f'\n[store]\nurl = "{postgres_url}"\n\n[queue]\nbroker = "{redis_url}"\nmap_chunk = 200\n')
    workers = WorkerPool(project_dir)
    try:
        yield Team(project_dir, workers, postgres_url, redis_url)
    finally:
        workers.close()


HOLD_BOUND = 120.0  # seconds a held reply waits at most: only steps that waited for one another would ever reach it


class HeldUntilAsked:
    """The reply to `held` is kept back until a request for `awaited` has arrived. Steps that run side by side get
    there while it is held; a step that waited for the held one never does, and the hold ends after HOLD_BOUND
    with `asked_while_held` false. Events, not a clock: a loaded machine only makes it slower, never wrong."""

    def __init__(self, server: FakeLLMServer, held: str, awaited: str, *, reply: str = "慢",
                 awaited_reply: str = "ok") -> None:
        from runner.testing.fake_llm import Rule

        self.asked = threading.Event()
        self.asked_while_held = False
        self.released_at = 0.0
        self.reply, self.awaited_reply = reply, awaited_reply
        server.rules.insert(0, Rule(awaited, self._awaited))  # before any broader rule that would also match
        server.rules.insert(0, Rule(held, self._held))

    def _awaited(self, body: dict[str, Any]) -> str:
        self.asked.set()
        return self.awaited_reply

    def _held(self, body: dict[str, Any]) -> str:
        self.asked_while_held = self.asked.wait(timeout=HOLD_BOUND)
        self.released_at = time.time()
        return self.reply
