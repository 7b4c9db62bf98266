"""The fake server takes as many simultaneous clients as its users test with: 800 plain connections at once,
each answered (the standard library's listen backlog of 5 left most of them timing out)."""

from __future__ import annotations

import asyncio
import json

from runner.testing import FakeLLMServer

CLIENTS = 800


async def ask(port: int) -> bool:
    body = json.dumps({"model": "fake", "messages": [{"role": "user", "content": "你好"}]}).encode()
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 10)
    writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nHost: fake\r\nContent-Type: application/json\r\n"
                 b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
    await writer.drain()
    status = await asyncio.wait_for(reader.readline(), 30)
    writer.close()
    return status.startswith(b"HTTP/1.1 200")


def test_eight_hundred_clients_at_once_are_all_answered() -> None:
    with FakeLLMServer(latency=0.3) as server:
        async def everyone() -> list[bool | BaseException]:
            return await asyncio.gather(*(ask(server.port) for _ in range(CLIENTS)), return_exceptions=True)

        answers = asyncio.run(everyone())
        assert [a for a in answers if a is not True] == []
        assert len(server.requests) == CLIENTS
