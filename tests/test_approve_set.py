"""The console's approval block reads like the page (an outline under the schema's titles), and `playbook approve
--set` takes values as its hint writes them: YAML flow for lists and objects (like `-i` inputs), the text itself
for a field the draft holds as text — even text that starts with a bracket."""

from __future__ import annotations

import json
import re
from pathlib import Path

from runner.testing import FakeLLMServer
from tests.conftest import ROOT, cli

PLAYBOOK = ROOT / "playbooks" / "feedback_digest.yaml"
REVIEWS = ROOT / "examples" / "reviews_zh.csv"


def test_set_takes_yaml_flow_and_text_fields_as_text(project_dir: Path, server: FakeLLMServer) -> None:
    waiting = cli("run", str(PLAYBOOK), "-i", f"comments={REVIEWS}", "-i", "limit=40", cwd=project_dir)
    assert waiting.returncode == 3, waiting.stdout + waiting.stderr
    run_id = re.search(r"playbook approve (\S+)", waiting.stdout).group(1)  # type: ignore[union-attr]
    # the draft is shown as an outline under the schema's titles, not JSON; the editable fields by title
    assert "（可修改：主题、总结、用户需求、FAQ 候选）" in waiting.stdout
    assert "\n主题：\n  1. 主题：" in waiting.stdout and " · 评论数：" in waiting.stdout
    assert '"themes"' not in waiting.stdout and '"name"' not in waiting.stdout
    assert re.search(r"次 LLM 调用，[\d,]+ tokens，费用 [\d.]+ CNY · 累计", waiting.stdout)  # a cost with its currency

    broken = cli("approve", run_id, "--set", "themes=[{name: 物流, count: 3", cwd=project_dir)
    said = broken.stdout + broken.stderr
    assert broken.returncode != 0 and "YAML 行内写法" in said and "Traceback" not in said
    themes = "[{name: 物流, count: 3, quotes: [太慢了, 一周才到], action: 换一家快递}]"
    approved = cli("approve", run_id, "--set", f"themes={themes}", "--set", "summary=[重要] 物流最慢",
                   cwd=project_dir)
    assert approved.returncode == 0, approved.stdout + approved.stderr
    (record,) = (project_dir / ".playbook" / "runs").glob(f"{run_id}/run.json")
    outputs = json.loads(record.read_text(encoding="utf-8"))["outputs"]
    assert outputs["themes"] == [{"name": "物流", "count": 3, "quotes": ["太慢了", "一周才到"], "action": "换一家快递"}]
    assert outputs["summary"] == "[重要] 物流最慢"
