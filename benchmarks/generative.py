"""The validate contract over thousands of random playbooks (tests/playbook_generator.py): prints the counts that
benchmarks/README.md reports. `python benchmarks/generative.py --cases 3000 [--first 0]`."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from runner.config import load_project  # noqa: E402
from runner.engine.execute import Runner  # noqa: E402
from runner.testing import FakeLLMServer  # noqa: E402
from tests.playbook_generator import CHILD, Tally, check_case, generate  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", type=int, default=3000)
    parser.add_argument("--first", type=int, default=0, help="first seed")
    args = parser.parse_args()
    tally = Tally()
    started = time.monotonic()
    with FakeLLMServer() as server, tempfile.TemporaryDirectory() as folder:
        project = Path(folder)
        (project / "playbook.toml").write_text(server.toml(), encoding="utf-8")
        (project / "child.yaml").write_text(CHILD, encoding="utf-8")
        os.environ["FAKE_LLM_API_KEY"] = "sk-bench"
        os.chdir(project)
        runner = Runner(load_project(project))
        try:
            for seed in range(args.first, args.first + args.cases):
                check_case(generate(seed), project, runner, tally)
        finally:
            runner.close()
    print(tally.line())
    print(f"seeds {args.first}–{args.first + args.cases - 1}, {time.monotonic() - started:.0f} s")
    for line in tally.broken[:50]:
        print("  ", line)
    sys.exit(1 if tally.broken else 0)


if __name__ == "__main__":
    main()
