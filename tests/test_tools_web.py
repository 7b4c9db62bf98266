"""web.fetch against real pages served on loopback: article text, metadata, links, charsets, errors."""

from __future__ import annotations

import asyncio
import difflib
import json
import re
import socket
from pathlib import Path

import pytest
from lxml import html as lxml_html

from runner.config import ProjectFile, WebSettings
from runner.testing import call_tool, serve_directory
from tests.conftest import allow_loopback, run_playbook, write_playbook

pytestmark = pytest.mark.usefixtures("english")  # these tests check what the messages say, in English

FIXTURES = Path(__file__).parent / "fixtures" / "html"
FAST = ProjectFile(web=WebSettings(delay=0, retries=2, timeout=5, allow_private=["127.0.0.1"]))  # pages on loopback


def similarity(a: str, b: str) -> float:
    def squash(text: str) -> str:
        return re.sub(r"\s+", "", text)

    return difflib.SequenceMatcher(None, squash(a), squash(b)).ratio()


def fetch(url: str, tmp_path: Path, **args: object) -> object:
    return asyncio.run(call_tool("web.fetch", {"url": url, **args}, run_dir=tmp_path, settings=FAST))


def test_gmw_article_text_title_author_date(tmp_path: Path) -> None:
    with serve_directory(FIXTURES) as base:
        page = fetch(f"{base}/gmw_source.html", tmp_path)
    gold = lxml_html.fromstring((FIXTURES / "gmw_expected.html").read_text("utf-8")).text_content()
    expected = json.loads((FIXTURES / "gmw_expected_metadata.json").read_text("utf-8"))
    score = similarity(gold, page.text)
    print(f"gmw similarity {score:.4f}")
    assert score >= 0.9
    assert page.title and expected["title"].startswith(page.title)
    assert page.author == expected["byline"] and page.published == "2017-03-10"


def test_bbc_chinese_article(tmp_path: Path) -> None:
    with serve_directory(FIXTURES) as base:
        page = fetch(f"{base}/bbc_zh_chinese_article.html", tmp_path, extract="article")
    gold = (FIXTURES / "bbc_zh_chinese_article.expected.txt").read_text("utf-8")
    score = similarity(gold, page.text)
    print(f"bbc similarity {score:.4f}")
    assert score >= 0.9 and page.title == "港特首梁振英就住宅违建事件道歉"


def test_front_page_links_are_absolute(tmp_path: Path) -> None:
    with serve_directory(FIXTURES) as base:
        page = fetch(f"{base}/cnn_main_site.html", tmp_path, extract="links")
    urls = [link.url for link in page.links]
    assert len(urls) > 100 and all(u.startswith(("http://", "https://")) for u in urls)
    assert len(urls) == len(set(urls))
    assert any("cnn.com" in u and "/2013/" in u for u in urls)  # article links, made absolute


def test_page_that_lies_about_its_charset(tmp_path: Path) -> None:
    text = ("<html><head><meta charset='gb2312'><title>双十一活动复盘</title></head>"
            "<body><p>{}</p></body></html>")
    body = "用户反馈：物流太慢，客服回复及时。" * 20
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "utf8_says_gb2312.html").write_bytes(text.format(body).encode("utf-8"))
    (tmp_path / "site" / "gbk_says_utf8.html").write_bytes(
        text.replace("gb2312", "utf-8").format(body).encode("gbk"))
    with serve_directory(tmp_path / "site") as base:
        lying_gb = fetch(f"{base}/utf8_says_gb2312.html", tmp_path, extract="html")
        lying_utf = fetch(f"{base}/gbk_says_utf8.html", tmp_path, extract="html")
    assert lying_gb.encoding == "utf-8" and "双十一活动复盘" in lying_gb.html
    assert "双十一活动复盘" in lying_utf.html and lying_utf.encoding in ("gb18030", "gbk", "gb2312")


def test_disallowed_scheme_and_host_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not an http"):
        fetch("file:///etc/passwd", tmp_path)
    strict = ProjectFile(web=WebSettings(allow_hosts=["example.com"], delay=0))
    with pytest.raises(ValueError, match=r"host '127\.0\.0\.1' is not allowed"):
        asyncio.run(call_tool("web.fetch", {"url": "http://127.0.0.1:9/x"}, run_dir=tmp_path,
                              settings=strict))


def test_404_and_timeout_fail_the_step_by_name_and_keep_finished_steps(project_dir: Path) -> None:
    allow_loopback(project_dir)
    with serve_directory(FIXTURES) as base:
        path = write_playbook(project_dir, f"""
name: fetcher
steps:
  - {{id: first, llm: {{prompt: 准备}}}}
  - {{id: page, tool: web.fetch, with: {{url: "{base}/missing.html"}}}}
""")
        outcome = run_playbook(path)
    assert outcome.status == "failed"
    assert outcome.error.startswith("step 'page': web.fetch: '") and "answered HTTP 404" in outcome.error
    with socket.socket() as silent:  # accepts connections (backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        slow = write_playbook(project_dir, f"""
name: slow
steps:
  - {{id: page, tool: web.fetch, timeout: 5s, with: {{url: "http://127.0.0.1:{port}/", timeout: 0.3}}}}
""", "slow.yaml")
        outcome = run_playbook(slow)
    assert outcome.status == "failed"
    # a host that takes the connection and never answers: waited for twice, not once per retry (3)
    expected = f"step 'page': web.fetch: 'http://127.0.0.1:{port}/': no answer (waited 0.3 s) (tried 2 times)"
    assert outcome.error.startswith(expected), outcome.error
