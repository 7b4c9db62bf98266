"""How long `playbook run` takes to exit after Ctrl-C, with a request to a hanging server in flight and
with the embedded local model mid-answer (a llama.cpp call cannot be stopped; the process must not wait).

    python benchmarks/bench_interrupt.py [--runs 3]

Prints the median seconds from SIGINT to exit for each case, and the exit codes seen."""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from runner.testing import FakeLLMServer

PLAYBOOK = """name: slow
steps:
  - {id: each, map: [1, 2, 3, 4, 5, 6, 7, 8], llm: {prompt: "第 ${{ item }} 条，写一句话"}}
"""


def once(folder: Path, wait: float) -> tuple[float, int]:
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "FAKE_LLM_API_KEY": "x"}
    process = subprocess.Popen([sys.executable, "-m", "runner", "run", "pb.yaml"], cwd=folder, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(wait)
    started = time.monotonic()
    process.send_signal(signal.SIGINT)
    code = process.wait(timeout=300)
    return time.monotonic() - started, code


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    runs = parser.parse_args().runs
    with tempfile.TemporaryDirectory() as tmp, FakeLLMServer(latency=60.0) as server:
        remote, local = Path(tmp, "remote"), Path(tmp, "local")
        for folder in (remote, local):
            folder.mkdir()
            (folder / "pb.yaml").write_text(PLAYBOOK, encoding="utf-8")
        (remote / "playbook.toml").write_text(server.toml(), encoding="utf-8")
        for name, folder, wait in (("hanging request in flight", remote, 8.0),
                                   ("local model mid-answer", local, 12.0)):
            seen = [once(folder, wait) for _ in range(runs)]
            print(f"{name}: median {statistics.median(s for s, _ in seen):.2f} s to exit "
                  f"(runs: {', '.join(f'{s:.2f}' for s, _ in seen)}; exit codes {sorted({c for _, c in seen})})")


if __name__ == "__main__":
    main()
