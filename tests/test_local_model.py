"""The embedded `local` model (llama.cpp on the shipped GGUF): the README's no-key run, end to end."""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path

import openpyxl
import pytest

from runner.dsl.output_schema import to_json_schema, to_model
from runner.models import local_model
from runner.models.llm import parse_structured
from tests.conftest import ROOT, cli

pytestmark = pytest.mark.local_model


def test_grammar_constrained_output_always_parses() -> None:
    model = to_model(to_json_schema({"sentiment": {"enum": ["正面", "中性", "负面"]}, "topic": "string",
                                     "tags": ["string"]}))
    messages = [{"role": "user", "content": "评论：房间干净，服务热情。只输出 JSON。"}]
    reply = asyncio.run(local_model.complete(messages, schema=model.model_json_schema(), max_tokens=256))
    parsed = parse_structured(reply["text"], model)
    assert parsed["sentiment"] in ("正面", "中性", "负面") and reply["tokens_out"] > 0


def test_readme_run_without_key_reaches_approval_and_finishes(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("PLAYBOOK_") and not k.endswith("_API_KEY")}
    env_clean = {**env, "OPENAI_API_KEY": ""}
    # every call takes longer than this: each step of the model says it is still working (no other settings)
    (tmp_path / "playbook.toml").write_text("[local]\nnotice_after = 0.5\n", encoding="utf-8")
    # the README's command with 5 reviews, not its 20: the same steps and calls with a quarter of the labelling,
    # half the model's CPU (the command as written is timed by benchmarks/readme_commands.py)
    first = cli("run", str(ROOT / "playbooks" / "feedback_digest.yaml"), "-i",
                f"comments={ROOT / 'examples' / 'reviews_zh.csv'}", "-i", "limit=5", cwd=tmp_path,
                env=env_clean)
    assert first.returncode == 3, first.stderr + first.stdout
    assert "内置的 'local' 模型" in first.stderr
    assert "label：the embedded model" not in first.stdout  # in the user's language, under the step's name
    still = r"说明\S* label：内置模型处理一次调用已 [\d.]+ 秒还没有回复（线程数：\d+）"
    assert re.search(still, first.stdout), first.stdout
    run_id = re.search(r"playbook approve (\S+)", first.stdout).group(1)  # type: ignore[union-attr]
    second = cli("approve", run_id, cwd=tmp_path, env=env_clean)
    assert second.returncode == 0, second.stderr
    book = openpyxl.load_workbook(tmp_path / ".playbook" / "runs" / run_id / "feedback_labelled.xlsx")
    rows = list(book["标注"].iter_rows(values_only=True))
    assert rows[0][3] == "情感" and len(rows) == 6 and all(r[3] in ("正面", "中性", "负面") for r in rows[1:])
