"""Many calls in flight to one endpoint are spread over several SDK clients, each with a small connection pool
(runner/models/client_shards.py): the rule that picks a client, and a run with 60 calls held in flight at once."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

from conftest import run_playbook, write_playbook

from runner.models.client_shards import ClientShards
from runner.testing import FakeLLMServer
from runner.testing.fake_llm import Rule


class Client:
    def __init__(self) -> None:
        self.closed = False

    async def close(self) -> None:
        self.closed = True


def test_a_client_is_added_only_when_every_client_is_full_and_calls_go_to_the_least_busy() -> None:
    made: list[Client] = []

    def make() -> Client:
        made.append(Client())
        return made[-1]

    shards = ClientShards(make, per_client=2)
    with shards.lease() as first, shards.lease() as second:
        assert first is second and shards.clients == 1  # room left: no second pool
        with shards.lease() as third:
            assert third is not first and shards.clients == 2  # the first carries 2: full
        with shards.lease() as fourth:
            assert fourth is made[1]  # the second carries nothing: least busy
    with shards.lease() as fifth:
        assert fifth is made[0] and shards.clients == 2  # all returned: the first again, nothing made
    asyncio.run(shards.aclose())
    assert [client.closed for client in made] == [True, True] and shards.clients == 0


def test_sixty_calls_in_flight_at_once_each_get_their_answer(project_dir: Path, server: FakeLLMServer) -> None:
    """Every request is held until all 60 have arrived, so they are in flight together across three clients; a
    lost or stalled one breaks the barrier (bounded) and fails the run."""
    together = threading.Barrier(60, timeout=120)

    def answer(body: dict[str, Any]) -> str:
        together.wait()
        return "答复：" + body["messages"][-1]["content"][-3:]

    server.rules.insert(0, Rule("编号", answer))
    with (project_dir / "playbook.toml").open("a", encoding="utf-8") as toml:
        toml.write("concurrency = 60\n")  # still inside [models.default]
    path = write_playbook(project_dir, """
name: wide
steps:
  - id: ask
    map: ${{ range(100, 160) | list }}
    batch: 1
    concurrency: 60
    llm: {prompt: "编号 ${{ item }}"}
outputs: {answers: "${{ steps.ask.output }}"}
""")
    outcome = run_playbook(path)
    assert outcome.status == "done", outcome.error
    assert outcome.outputs["answers"] == [f"答复：{n}" for n in range(100, 160)]
