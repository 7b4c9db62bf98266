"""feedback_digest with a knowledge base (`kb` input): the official passages for each recurring question and each
unhappy comment reach the model, and every FAQ answer and reply draft either cites a passage that exists or says
无依据 — in the outputs, the report and the workbook. The fake model here answers the way the prompt asks: it cites
the first passage given for an item, or says 无依据 when none was."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from openpyxl import load_workbook

from runner.kb.index import build, load
from runner.testing import FakeLLMServer
from tests.conftest import ROOT, cli, resume, run_playbook

PLAYBOOK = ROOT / "playbooks" / "feedback_digest.yaml"
COMMENTS = ["退货的运费到底谁出，客服说不清楚", "发票一直没收到，不知道去哪下载", "快递太慢了，一周还没到，差评",
            "退款申请了三天还没到账", "包装破了，东西也摔坏了", "这个颜色和图片差太多", "客服态度很差，爱答不理",
            "会员积分怎么用一直搞不懂"]
QUESTIONS = ["退货运费谁承担", "电子发票在哪里下载", "退款多久到账", "火星上能发货吗"]


def _sections(prompt: str) -> list[tuple[int, str]]:
    return [(int(n), body) for n, body in re.findall(r"### 第 (\d+) 条\n(.*?)(?=### 第 \d+ 条|\Z)", prompt, re.S)]


def _first_cite(text: str) -> str:
    found = re.search(r"^\s*\[([^\]]+)\] ", text.split("官方资料", 1)[-1], re.M)
    return found.group(1) if found else "无依据"


def model(body: dict[str, Any]) -> Any:
    """What a model that follows the prompt says, per step."""
    prompt = body["messages"][-1]["content"]
    prompt = prompt if isinstance(prompt, str) else json.dumps(prompt, ensure_ascii=False)
    if "评论：" in prompt and "### 第" in prompt and "情感" in prompt:  # label: everything is unhappy
        return {"items": [{"index": i, "sentiment": "负面", "topic": "售后", "good_case": False}
                          for i, _body in _sections(prompt)]}
    if "起一个 4-10 字的名字" in prompt:  # cluster_notes: each cluster asks one of the questions
        return {"items": [{"index": i, "name": f"第{i}组", "gist": "售后问题", "lean": "负面",
                           "request": "说清售后规则", "faq_question": QUESTIONS[i % len(QUESTIONS)]}
                          for i, _body in _sections(prompt)]}
    if "用户评论：" in prompt:  # replies
        return {"items": [{"index": i, "reply": "您好，这件事我们会按规则处理。", "addresses": "售后",
                           "basis": _first_cite(part)} for i, part in _sections(prompt)]}
    if "合并为 3-6 个主题" in prompt:  # themes: one FAQ entry per question, cited as given
        faq = []
        for block in re.split(r"\n\s*问题：", prompt.split("官方资料（知识库", 1)[-1])[1:]:
            question = block.splitlines()[0].strip()
            cite = _first_cite("官方资料\n" + "\n".join(block.splitlines()[1:]))
            faq.append({"question": question, "answer": "见依据" if cite != "无依据" else "转人工处理",
                        "basis": cite})
        return {"themes": [{"name": "售后", "count": 8, "quotes": ["退款三天没到账"], "action": "把售后规则写清楚"}],
                "summary": "售后规则说不清是主要问题。", "requests": [{"need": "售后规则透明", "evidence": "8 条",
                                                           "priority": "P0"}], "faq": faq}
    return {"cases": []}


def _shop(project_dir: Path, server: FakeLLMServer) -> tuple[set[str], Path]:
    """The knowledge base `shop` (return and invoice rules), the comments file, the fake model answering as the
    prompt asks; returns the cites that exist and the comments file."""
    docs = project_dir / "docs"
    docs.mkdir()
    (docs / "退换货政策.md").write_text(
        "# 退换货政策\n\n## 七天无理由\n\n签收后七天内可无理由退货，退货运费由买家承担；质量问题运费由商家承担。\n\n"
        "## 退款时效\n\n退货签收后 1-3 个工作日原路退款到账。\n", encoding="utf-8")
    (docs / "发票.md").write_text("# 发票\n\n## 电子发票下载\n\n确认收货后，在订单详情页点「查看发票」下载电子发票。\n",
                                encoding="utf-8")
    build(project_dir / ".playbook" / "kb", "shop", docs)
    cites = {p["file"] + " › " + p["heading"] for p in load(project_dir / ".playbook" / "kb", "shop").passages}
    comments = project_dir / "comments.csv"
    comments.write_text("id,text\n" + "".join(f"{i},{t}\n" for i, t in enumerate(COMMENTS)), encoding="utf-8")
    server.add_rule("", model)
    return cites, comments


def test_every_reply_and_faq_answer_cites_a_real_passage_or_says_no_basis(project_dir: Path,
                                                                          server: FakeLLMServer) -> None:
    cites, comments = _shop(project_dir, server)

    outcome = run_playbook(PLAYBOOK, {"comments": str(comments), "kb": "shop", "review": False, "clusters": 4})

    assert outcome.status == "done", outcome.error
    faq = outcome.outputs["faq"]
    assert faq and all(f["basis"] in cites or f["basis"] == "无依据" for f in faq), faq
    assert {f["question"]: f["basis"] for f in faq}.get("火星上能发货吗") == "无依据"  # nothing made up
    assert any(f["basis"] == "发票.md › 发票 › 电子发票下载" for f in faq)
    rows = list(load_workbook(Path(outcome.run_dir) / "feedback_labelled.xlsx")["回复草稿"].values)
    assert rows[0][-1] == "依据"
    bases = [row[-1] for row in rows[1:]]
    assert len(bases) == len(COMMENTS) and all(b in cites or b == "无依据" for b in bases), bases
    assert "退换货政策.md › 退换货政策 › 七天无理由" in bases and "无依据" in bases  # the colour complaint
    report = (Path(outcome.run_dir) / "report.md").read_text(encoding="utf-8")
    assert "（依据：发票.md › 发票 › 电子发票下载）" in report


def test_the_reviewer_sees_the_cited_passage_beside_each_faq_answer_and_each_reply(
        project_dir: Path, server: FakeLLMServer) -> None:
    from starlette.testclient import TestClient

    from runner.config import load_project
    from runner.server import create_app

    cites, comments = _shop(project_dir, server)
    first = run_playbook(PLAYBOOK, {"comments": str(comments), "kb": "shop", "clusters": 4})
    assert first.status == "waiting" and first.pending["step"] == "review"
    invoice = "发票.md › 发票 › 电子发票下载"
    assert {"cite": invoice, "text": "确认收货后，在订单详情页点「查看发票」下载电子发票。"} in first.pending["sources"]
    with TestClient(create_app(load_project()), base_url="http://127.0.0.1:8600", client=("127.0.0.1", 5000)) as http:
        page = http.get(f"/runs/{first.run_id}/approval").text
        # the FAQ answer's 依据 cell carries the passage it names, under it
        assert re.search(rf"<td>{re.escape(invoice)}<blockquote class=\"passage\"><small>{re.escape(invoice)}</small>"
                         r"<br>确认收货后，在订单详情页点「查看发票」下载电子发票。</blockquote></td>", page), page
        second = resume(first.run_id, decision={"action": "approve", "by": "运营小王"})
        assert second.status == "waiting" and second.pending["step"] == "review_replies"
        replies = second.pending["draft"]
        assert [set(r) for r in replies[:1]] == [{"编号", "评论", "回复草稿", "依据"}] and len(replies) == len(COMMENTS)
        page = http.get(f"/runs/{first.run_id}/approval").text
        assert "审核回复草稿" in page
        for reply in replies:  # each reply cites a passage that exists, shown under it, or says 无依据
            assert reply["依据"] in cites or reply["依据"] == "无依据"
            if reply["依据"] != "无依据":
                assert f"<td>{reply['依据']}<blockquote class=\"passage\"><small>{reply['依据']}</small>" in page
        assert page.count('class="passage"') == sum(r["依据"] != "无依据" for r in replies)
    rejected = resume(first.run_id, decision={"action": "reject", "comment": "第 2 条别承诺时效", "by": "运营小王"})
    assert rejected.status == "waiting" and rejected.pending["step"] == "review_replies"
    assert any("审核人对上一版回复的意见：第 2 条别承诺时效" in p for p in server.prompts("用户评论："))
    done = resume(first.run_id, decision={"action": "approve", "by": "运营小王"})
    assert done.status == "done", done.error
    rows = list(load_workbook(Path(done.run_dir) / "feedback_labelled.xlsx")["回复草稿"].values)
    assert len(rows) == len(COMMENTS) + 1
    # the console's approval block lists the passages the draft cites, under the draft
    shown = cli("run", str(PLAYBOOK), "-i", f"comments={comments}", "-i", "kb=shop", "-i", "clusters=4",
                cwd=project_dir)
    assert shown.returncode == 3, shown.stderr
    cited = shown.stdout.split("草稿引用的资料原文：", 1)[1]
    assert f"  [{invoice}] 确认收货后，在订单详情页点「查看发票」下载电子发票。" in cited.splitlines()
