"""feed.read on real RSS/Atom feeds and a gb2312 one; sheet encodings and a 10,000-row xlsx."""

from __future__ import annotations

import asyncio
import csv
import io
from pathlib import Path

import openpyxl
import pytest

from runner.config import ProjectFile, WebSettings
from runner.testing import call_tool, serve_directory

RSS = Path(__file__).parent / "fixtures" / "rss"
FAST = ProjectFile(web=WebSettings(delay=0, allow_private=["127.0.0.1"]))  # the pages are served on loopback


def call(name: str, tmp_path: Path, **args: object) -> object:
    return asyncio.run(call_tool(name, dict(args), run_dir=tmp_path / "run", settings=FAST))


def test_rss_and_atom_over_http(tmp_path: Path) -> None:
    with serve_directory(RSS) as base:
        rss = call("feed.read", tmp_path, url=f"{base}/guardian.rss")
        atom = call("feed.read", tmp_path, url=f"{base}/heise.atom", limit=5)
    assert rss.kind.startswith("rss") and rss.count > 10
    assert all(i.title and i.link and i.link.startswith("http") for i in rss.items)
    assert atom.kind.startswith("atom") and atom.count == 5
    assert atom.items[0].published >= atom.items[-1].published  # newest first


def test_gb2312_feed_built_from_the_same_items(tmp_path: Path) -> None:
    source = call("feed.read", tmp_path, path=str(RSS / "guardian.rss"))
    titles = ["【热点】" + item.title[:20] + "：用户反馈与活动复盘" for item in source.items[:5]]
    entries = "".join(f"<item><title>{t}</title><link>{i.link}</link><description>中文摘要 {n}"
                      f"</description></item>" for n, (t, i) in enumerate(zip(titles, source.items, strict=False)))
    xml = (f'<?xml version="1.0" encoding="gb2312"?><rss version="2.0"><channel><title>运营资讯</title>'
           f"{entries}</channel></rss>")
    path = tmp_path / "gb.rss"
    path.write_bytes(xml.encode("gb18030"))
    feed = call("feed.read", tmp_path, path=str(path))
    assert feed.title == "运营资讯" and [i.title for i in feed.items] == titles


def test_not_a_feed_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "x.rss").write_text("hello", encoding="utf-8")
    with pytest.raises(ValueError, match="不是可读的 RSS/Atom 订阅"):
        call("feed.read", tmp_path, path=str(tmp_path / "x.rss"))


def test_gbk_and_utf8_bom_csv_read_back_the_same_rows(tmp_path: Path) -> None:
    rows = [{"id": str(i), "text": f"第{i}条评论：物流很快，客服态度好"} for i in range(50)]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["id", "text"])
    writer.writeheader()
    writer.writerows(rows)
    (tmp_path / "gbk.csv").write_bytes(buffer.getvalue().encode("gbk"))
    (tmp_path / "bom.csv").write_bytes(buffer.getvalue().encode("utf-8-sig"))
    gbk = call("sheet.read", tmp_path, path=str(tmp_path / "gbk.csv"))
    bom = call("sheet.read", tmp_path, path=str(tmp_path / "bom.csv"), columns={"text": "评论"})
    assert gbk.rows == rows and gbk.count == 50
    assert bom.rows == [{"评论": r["text"]} for r in rows]


def test_xlsx_with_10000_chinese_rows_reopens_identical_with_yes_no_for_booleans(tmp_path: Path) -> None:
    rows = [{"id": i, "评论": f"第{i}条：" + "这家店的服务真的很贴心，下次还来。" * (1 + i % 4),
             "情感": ["正面", "中性", "负面"][i % 3], "好案例": i % 7 == 0} for i in range(10_000)]
    out = call("sheet.write", tmp_path, path="labelled.xlsx", rows=rows, sheet="标注")
    call("sheet.write", tmp_path, path="labelled.xlsx", rows=[{"主题": "物流", "数量": 3}], sheet="主题")
    assert out.count == 10_000
    book = openpyxl.load_workbook(out.path)
    assert book.sheetnames == ["标注", "主题"]
    sheet = book["标注"]
    assert sheet.freeze_panes == "A2" and sheet["A1"].font.bold
    back = [dict(zip(["id", "评论", "情感", "好案例"], r, strict=True))
            for r in sheet.iter_rows(min_row=2, values_only=True)]
    assert back == [{**r, "好案例": "是" if r["好案例"] else "否"} for r in rows]  # a yes/no as a person reads it
