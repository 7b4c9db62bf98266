"""Inputs as users have them: comment files with any column names, feed dates without a timezone, charts."""

from __future__ import annotations

from pathlib import Path

import openpyxl

from runner.testing import FakeLLMServer
from tests.conftest import ROOT, cli

DIGEST = ROOT / "playbooks" / "feedback_digest.yaml"


def test_feedback_digest_reads_a_file_whose_columns_are_not_id_and_text(project_dir: Path,
                                                                        server: FakeLLMServer) -> None:
    comments = project_dir / "导出.csv"
    comments.write_text("编号,评论内容,标签\n" + "".join(
        f"A{n:03d},第{n}次下单，物流太慢了等了五天才到，客服也不回消息,物流\n" if n % 2 else
        f"A{n:03d},包装很好，第{n}次回购，价格实惠,好评\n" for n in range(1, 13)), encoding="utf-8")
    done = cli("run", str(DIGEST), "-i", f"comments={comments}", "-i", "review=false", cwd=project_dir)
    assert done.returncode == 0, done.stderr
    assert "说明 文字取自「评论内容」列（平均" in done.stdout
    assert "编号取自「编号」列" in done.stdout
    assert [p for p in server.prompts("评论") if "物流太慢" in p]  # the text column reached the model
    run_dir = next((project_dir / ".playbook" / "runs").iterdir())
    sheet = openpyxl.load_workbook(run_dir / "feedback_labelled.xlsx")["标注"]
    header = [c.value for c in sheet[1]]
    ids = [row[header.index("编号")] for row in sheet.iter_rows(min_row=2, values_only=True)]
    # every comment kept its own id (near-duplicates are dropped by text.dedupe)
    assert len(ids) >= 2 and set(ids) <= {f"A{n:03d}" for n in range(1, 13)}
    report = (run_dir / "report.md").read_text(encoding="utf-8")
    assert "评论取自「评论内容」列，编号取自「编号」列" in report


def test_a_file_without_an_id_column_is_numbered_and_an_explicit_column_is_used(project_dir: Path,
                                                                              server: FakeLLMServer) -> None:
    comments = project_dir / "raw.csv"
    comments.write_text("渠道,用户留言,备注\n" + "".join(
        f"App,这个版本闪退了{n}次，希望尽快修复,无\n" for n in range(1, 9)), encoding="utf-8")
    done = cli("run", str(DIGEST), "-i", f"comments={comments}", "-i", "review=false",
               "-i", "text_column=用户留言", cwd=project_dir)
    assert done.returncode == 0, done.stderr
    assert "没有编号列：按行从 1 编号" in done.stdout
    wrong = cli("run", str(DIGEST), "-i", f"comments={comments}", "-i", "text_column=留言", cwd=project_dir)
    assert wrong.returncode == 1 and "没有列 '留言'（是不是 '用户留言'？）" in wrong.stderr


FEED = """<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>t</title>
<item><title>无时区</title><link>http://x/1</link><pubDate>Mon, 17 Aug 2026 09:00:00</pubDate></item>
<item><title>带时区</title><link>http://x/2</link><pubDate>Mon, 17 Aug 2026 09:00:00 +0000</pubDate></item>
<item><title>ISO 无时区</title><link>http://x/3</link><pubDate>2026-08-17T20:30:00</pubDate></item>
</channel></rss>"""


def test_feed_dates_without_a_timezone_are_read_in_the_project_timezone(tmp_path: Path) -> None:
    import asyncio

    from runner.config import ProjectFile
    from runner.testing import call_tool

    (tmp_path / "f.rss").write_text(FEED, encoding="utf-8")
    for zone, zoneless, iso in (("Asia/Shanghai", "2026-08-17T01:00:00+00:00", "2026-08-17T12:30:00+00:00"),
                                ("UTC", "2026-08-17T09:00:00+00:00", "2026-08-17T20:30:00+00:00")):
        out = asyncio.run(call_tool("feed.read", {"path": str(tmp_path / "f.rss")}, run_dir=tmp_path,
                                    settings=ProjectFile(timezone=zone)))
        published = {item.title: item.published for item in out.items}
        assert published == {"无时区": zoneless, "带时区": "2026-08-17T09:00:00+00:00", "ISO 无时区": iso}, zone


CHART = """
import asyncio, json, sys
from pathlib import Path
import matplotlib
from runner.testing import call_tool
cache = next(Path(matplotlib.get_cachedir()).glob("fontlist-*.json"))
data = json.loads(cache.read_text())
data["ttflist"] = [f for f in data["ttflist"] if "CJK" not in f["name"]]   # written before the font came
cache.write_text(json.dumps(data))
from matplotlib import font_manager
font_manager.fontManager = font_manager._load_fontmanager()
rows = [{"date": f"2026-01-{d:02d}", "销量": d} for d in range(1, 10)]
out = asyncio.run(call_tool("metrics.chart", {"path": "c.png", "rows": rows, "values": ["销量"], "title": "销量"},
                            run_dir=Path(sys.argv[1])))
print("CJK" in cache.read_text(), out.points)
"""


def test_a_font_cache_older_than_the_cjk_font_is_rebuilt_once(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    env = {**os.environ, "MPLCONFIGDIR": str(tmp_path / "mpl")}
    warm = subprocess.run([sys.executable, "-c", "import matplotlib.font_manager"], env=env, capture_output=True)
    assert warm.returncode == 0
    done = subprocess.run([sys.executable, "-c", CHART, str(tmp_path / "run")], env=env, capture_output=True,
                          text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "9"]  # the chart was drawn and the cache now knows the font
    assert (tmp_path / "run" / "c.png").read_bytes()[:4] == b"\x89PNG"
