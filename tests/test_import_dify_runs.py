"""Every one of the 46 imported Dify apps runs end to end against the fake model server: their web APIs and pages on
a loopback stand-in, their code nodes through the generated plugin tools (the user's code, unchanged). Where an app
needs more than generic inputs — the model's reply in the shape the user's code parses, a value for a node the
import left out (as the user would fill it in), an API's answer — the stand-in below says so."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from runner.testing import FakeLLMServer
from tests.conftest import allow_images, allow_loopback, run_playbook
from tests.test_import_dify import APPS, imported

PAGE = ("<html><head><title>活动规则</title></head><body><h1>双十一活动规则</h1><p>活动期间满 300 减 40，"
        "每位用户限领一次，优惠券有效期七天。</p></body></html>")


@dataclass
class StandIn:
    inputs: dict[str, Any] = field(default_factory=dict)  # beyond the generic value of each input's type
    replies: list[tuple[str, Any]] = field(default_factory=list)  # the model's reply, by a phrase of the prompt
    api: Any = None  # what the app's web API answers (JSON) to a POST, and to a GET when `api_on_get`
    api_on_get: bool = False  # else a GET gets the page above
    filled: dict[str, str] = field(default_factory=dict)  # a left-out node's placeholder step, filled in


COUPLET = {"top": "春回大地千山秀", "bottom": "福满人间万户春", "banner": "万象更新"}
STAND_INS: dict[str, StandIn] = {
    "Claude3 Code Translation": StandIn(filled={"lambdayamltojson": json.dumps({"json": {
        "out_file_name": "Calc.java", "java": [{"type": "function", "signature": "int add(int a, int b)"}]}})}),
    "chart_demo": StandIn(api={"data": {"beginYear": 1991, "endYear": 2020, "data": [
        {"month": 1, "maxTemp": 8.1, "minTemp": 1.2, "rainfall": 74.1},
        {"month": 2, "maxTemp": 10.3, "minTemp": 2.9, "rainfall": 69.6}]}}, api_on_get=True),
    "Demo-tod_agent": StandIn(filled={"agent": "InformationCollectionCompleted：3 月 5 日，上海到杭州，两天"}),
    "Dify 运营一条龙": StandIn(api={"code": 0, "data": {"url": "https://img.example/card.png"}}),
    "Form表单聊天Demo": StandIn(inputs={"user_token": "tok-1"}),  # signed in: the chat route
    "json-repair": StandIn(inputs={"llm_string": '{"活动": "双十一", "满减": [300, 40],'}),  # cut off mid-way
    "llm2o1.cn": StandIn(replies=[("提取参数", {"steps": [{"name": "调研", "content": "收集竞品的活动规则"},
                                                     {"name": "成文", "content": "写出活动方案"}]})]),
    "runLLMCode": StandIn(replies=[("", "```python\nprint(sum([120, 135]))\n```")],
                          api={"code": 0, "data": {"stdout": "255\n", "error": ""}}),  # Dify's code sandbox
    "完蛋！我被LLM包围了！": StandIn(inputs={"status": "running"}),  # a question being answered
    "完蛋！我被LLM包围了！（战绩排行版）": StandIn(inputs={"status": "running"}),
    "小支付-DEMO": StandIn(inputs={"status": 1}),  # paid: the service route
    "dify_course_demo": StandIn(replies=[("从入门到精通", '```json\n[{"chapter": "第一章", "title": "入门", '
                                                       '"contents": ["安装", "第一个程序"]}]\n```')]),
    "json_translate": StandIn(inputs={"json_data": '{"title": "双十一活动", "rules": ["满 300 减 40"]}'}),
    "simple-kimi": StandIn(filled={"duckduckgo_sou_suo": "${{ [{'href': '%(base)s/a', 'title': '活动规则'}] * 4 }}"}),
    "文章仿写-单图_多图自动搭配": StandIn(filled={"ben_di_pa_chong": json.dumps(
        {"content": "双十一活动期间满 300 减 40，每位用户限领一次。", "images": []}, ensure_ascii=False)}),
    "春联生成器": StandIn(replies=[("", COUPLET)]),
    "春联生成器 (“福”到了版本)": StandIn(replies=[("", {**COUPLET, "summary": "福"})]),
}


def generic_value(spec: dict[str, Any], folder: Path, base: str) -> Any:
    """What a user would give for an input: its default if it has one, else a value of its type (a URL on the
    stand-in where text may be one)."""
    if "default" in spec:
        return spec["default"]
    if spec.get("enum"):
        return spec["enum"][0]
    kind = spec.get("type", "string")
    if kind in ("number", "integer"):
        return 1
    if kind == "boolean":
        return True
    if kind == "history":
        return [{"role": "user", "content": "你好"}, {"role": "assistant", "content": "你好，有什么可以帮你？"}]
    if kind == "file":
        sample = folder / "sample.csv"
        sample.write_text("月份,销量\n1,120\n2,135\n", encoding="utf-8")
        return str(sample)
    if kind == "list":
        return []
    if kind == "object":
        return {}
    return f"{base}/page 双十一活动怎么参加"[: spec.get("max_length") or 200]


class StandInApi:
    """Every web host an app calls, on loopback: a page to a GET, the app's API answer (or `{}`) to a POST."""

    def __init__(self, answer: Any, on_get: bool) -> None:
        self.requests: list[str] = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, kind: str, data: bytes) -> None:
                api.requests.append(f"{self.command} {self.path}")
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                if not on_get:
                    self._send("text/html; charset=utf-8", PAGE.encode())
                else:
                    self._send("application/json", json.dumps(answer, ensure_ascii=False).encode())

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length") or 0))
                self._send("application/json", json.dumps(answer or {}, ensure_ascii=False).encode())

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self) -> StandInApi:
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def stand_in_api(request: pytest.FixtureRequest) -> Iterator[StandInApi]:
    stand_in = STAND_INS.get(request.node.callspec.params["app"].stem.strip(), StandIn())
    with StandInApi(stand_in.api, stand_in.api_on_get) as api:
        yield api


@pytest.mark.parametrize("app", APPS, ids=[p.stem.strip() for p in APPS])
def test_an_imported_app_runs_end_to_end(app: Path, project_dir: Path, server: FakeLLMServer,
                                        stand_in_api: StandInApi, monkeypatch: pytest.MonkeyPatch) -> None:
    stand_in = STAND_INS.get(app.stem.strip(), StandIn())
    allow_images(project_dir)
    allow_loopback(project_dir)
    for pattern, reply in stand_in.replies:
        server.add_rule(pattern, reply)
    result, target = imported(app, project_dir)
    # the app's web hosts are public services: point them at the stand-in, as a user would at a test server
    text = re.sub(r"https?://[^\s'\"}]+", stand_in_api.base + "/api", target.read_text(encoding="utf-8"))
    playbook = yaml.safe_load(text)
    left_out = {entry.title for entry in result.left_out}
    for step in playbook["steps"]:  # the import's placeholders for what it left out, filled in as a user would
        if step.get("template") == "" and any(title in step.get("title", "") for title in left_out):
            step["template"] = stand_in.filled.get(step["id"], "（人工补上的结果）") % {"base": stand_in_api.base}
    target.write_text(yaml.safe_dump(playbook, allow_unicode=True, sort_keys=False), encoding="utf-8")
    for secret in playbook.get("secrets") or []:
        monkeypatch.setenv(secret, "sk-stand-in")
    inputs = {name: stand_in.inputs.get(name, generic_value(spec or {}, project_dir, stand_in_api.base))
              for name, spec in (playbook.get("inputs") or {}).items()}

    outcome = run_playbook(target, inputs)

    assert outcome.status == "done", outcome.error
    assert outcome.outputs and any(value not in (None, "", [], {}) for value in outcome.outputs.values()), \
        outcome.outputs
    llm_steps = sum(1 for step in playbook["steps"] if "llm" in step)
    assert llm_steps == 0 or server.requests, "no step called the model"
