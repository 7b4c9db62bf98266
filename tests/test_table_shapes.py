"""File shapes real exports come in, read right or refused before anything is spent: a title line above the header
(GB18030), a row split by an unquoted comma, a whitespace-separated gzipped file without a header, a csv that is a
workbook. Each asserts the exact rows or numbers."""

from __future__ import annotations

import asyncio
import csv
import gzip
import json
from collections import defaultdict
from pathlib import Path

import openpyxl
import pytest

from runner.registry import ToolArgumentError
from runner.testing import FakeLLMServer, call_tool
from tests.conftest import ROOT, cli, write_playbook

DIGEST = ROOT / "playbooks" / "feedback_digest.yaml"
KPI = ROOT / "playbooks" / "kpi_report.yaml"
ORDERS = ROOT / "examples" / "orders" / "cdnow_orders_1997q1.csv"
REVIEWS = ["物流很快，包装完好，第二天就到了", "屏幕有划痕，客服一直不回消息", "价格实惠，用了一周没有问题",
           "电池不耐用，半天就没电了", "做工精细，送给爸爸很喜欢", "尺码偏小，退换货流程太麻烦"]


def _read(path: Path, **args: object) -> object:
    return asyncio.run(call_tool("sheet.read", {"path": str(path), **args}, run_dir=path.parent / "run"))


def _shop_export(path: Path) -> list[str]:
    """A shop's review export: a title line, then 订单号 (ten-digit order numbers), the review, a score, a time."""
    orders = [f"{4100000000 + n * 7919}" for n in range(len(REVIEWS))]
    lines = ["商品评价导出,导出时间：2026-11-30 09:15", "订单号,评价内容,评分,评价时间"]
    lines += [f"{o},{r},{5 - n % 3},2026-11-{n + 1:02d} 10:00"
              for n, (o, r) in enumerate(zip(orders, REVIEWS, strict=True))]
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode("gb18030"))
    return orders


def test_a_title_line_above_the_header_in_gb18030(tmp_path: Path) -> None:
    orders = _shop_export(tmp_path / "评价导出.csv")
    out = _read(tmp_path / "评价导出.csv", text_column="auto", id_column="auto")
    assert [(r["id"], r["text"]) for r in out.rows] == list(zip(orders, REVIEWS, strict=True))  # type: ignore[attr-defined]
    assert out.text_column == "评价内容" and out.id_column == "订单号"  # type: ignore[attr-defined]
    assert "表头取第 2 行（上面是标题：「商品评价导出,导出时间：2026-11-30 09:15」）" in out.notice  # type: ignore[attr-defined]


def test_feedback_digest_labels_the_reviews_not_the_order_numbers_under_a_title_line(
        project_dir: Path, server: FakeLLMServer) -> None:
    orders = _shop_export(project_dir / "评价导出.csv")
    done = cli("run", str(DIGEST), "-i", "comments=评价导出.csv", "-i", "review=false", cwd=project_dir)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "说明 表头取第 2 行" in done.stdout
    labelled = [p for p in server.prompts("评论：")]
    assert {r for r in REVIEWS if any(r in p for p in labelled)} == set(REVIEWS)
    assert not any(o in p for o in orders for p in labelled)  # an order number is never read as a review
    run_dir = next((project_dir / ".playbook" / "runs").iterdir())
    sheet = openpyxl.load_workbook(run_dir / "feedback_labelled.xlsx")["标注"]
    assert {row[0] for row in sheet.iter_rows(min_row=2, values_only=True)} <= set(orders)


def test_a_row_split_by_an_unquoted_comma_keeps_its_text(tmp_path: Path) -> None:
    (tmp_path / "c.csv").write_text(
        "编号,评论,评分,时间\n"
        "A1,物流很快,5,2026-11-01\n"
        "A2,包装破了,东西还行,客服态度一般,2,2026-11-02\n"
        "A3,好用,4,2026-11-03\n"
        "A4,一般,3,2026-11-04,,\n", encoding="utf-8")
    out = _read(tmp_path / "c.csv")
    assert out.rows == [  # type: ignore[attr-defined]
        {"编号": "A1", "评论": "物流很快", "评分": "5", "时间": "2026-11-01"},
        {"编号": "A2", "评论": "包装破了,东西还行,客服态度一般", "评分": "2", "时间": "2026-11-02"},
        {"编号": "A3", "评论": "好用", "评分": "4", "时间": "2026-11-03"},
        {"编号": "A4", "评论": "一般", "评分": "3", "时间": "2026-11-04"}]
    assert out.notice == ("第 3 行的字段比表头多：是「评论」列的文字里有未加引号的逗号，已把多出的部分并回该列，"  # type: ignore[attr-defined]
                          "原文没有丢")


def test_a_row_no_column_explains_is_refused_before_the_run_naming_its_line(
        project_dir: Path, server: FakeLLMServer) -> None:
    (project_dir / "c.csv").write_text("编号,评论,评分,时间\nA1,物流很快,5,2026-11-01\n"
                                       "A2,包装破了,2,2026-11-02,多余\nA3,好用,4,2026-11-03\n", encoding="utf-8")
    done = cli("run", str(DIGEST), "-i", "comments=c.csv", cwd=project_dir)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "'c.csv' 第 3 行：字段比表头的 4 个多" in done.stderr and "Traceback" not in done.stderr
    assert not server.requests


def _cdnow_txt(path: Path) -> None:
    """CDNOW's original shape: space-padded columns, no header, dates as YYYYMMDD — gzipped."""
    with ORDERS.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    text = "".join(f"{r['user_id']:>6} {r['date'].replace('-', '')} {r['quantity']:>3} {r['amount']:>8}\n"
                   for r in rows)
    path.write_bytes(gzip.compress(text.encode("ascii")))


def test_a_whitespace_separated_gzipped_file_without_a_header(project_dir: Path, server: FakeLLMServer) -> None:
    _cdnow_txt(project_dir / "CDNOW_master.txt.gz")
    refused = cli("run", str(KPI), "-i", "table=CDNOW_master.txt.gz", "-i", "aggregate={orders: count}",
                  cwd=project_dir)
    assert refused.returncode == 2 and not server.requests
    assert ("第一行看起来是数据而不是列名（00001, 19970101, 1, 11.77）；请用 names: [col1, col2, col3, col4] "
            "按顺序给出列名") in refused.stderr
    server.add_rule("数据截至", {"headline": "订单走势平稳", "narrative": "见下表。", "actions": ["一、关注复购"]})
    done = cli("run", str(KPI), "-i", "table=CDNOW_master.txt.gz", "-i", "names=[user_id, date, quantity, amount]",
               "-i", "aggregate={orders: count, buyers: nunique(user_id), revenue: sum(amount)}", cwd=project_dir)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "说明 已解压 gzip；按空格分列" in done.stdout
    truth: dict[str, list[dict[str, str]]] = defaultdict(list)
    with ORDERS.open(encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            truth[row["date"]].append(row)
    (summary,) = (project_dir / ".playbook" / "runs").glob("*/run.json")
    days = json.loads(summary.read_text(encoding="utf-8"))["outputs"]["days"]
    got = {(r["period"], r["metric"]): r["value"] for r in days}
    assert len(got) == 3 * len(truth)
    for day, rows in truth.items():
        assert got[(day, "orders")] == len(rows)
        assert got[(day, "buyers")] == len({r["user_id"] for r in rows})
        assert round(got[(day, "revenue")], 2) == round(sum(float(r["amount"]) for r in rows), 2)


def test_header_row_and_names_say_what_detection_cannot(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text("说明：本表为测试,,\n备注,,\n日期,访客,下单\n2026-11-01,100,5\n2026-11-02,120,6\n",
                                    encoding="utf-8")
    assert _read(tmp_path / "t.csv").rows[0] == {"日期": "2026-11-01", "访客": "100", "下单": "5"}  # type: ignore[attr-defined]
    told = _read(tmp_path / "t.csv", header_row=4, names=["day", "visitors", "orders"])
    assert told.rows == [{"day": "2026-11-02", "visitors": "120", "orders": "6"}]  # type: ignore[attr-defined]
    (tmp_path / "n.csv").write_text("2026-11-01,100,5\n2026-11-02,120,6\n", encoding="utf-8")
    with pytest.raises(ToolArgumentError, match=r"names 有 2 个名字，但 '.*n.csv' 有 3 列"):
        _read(tmp_path / "n.csv", names=["day", "visitors"])
    assert _read(tmp_path / "n.csv", header_row=0).rows[1] == {"col1": "2026-11-02", "col2": "120", "col3": "6"}  # type: ignore[attr-defined]


def test_other_separators_and_a_csv_that_is_a_workbook(tmp_path: Path) -> None:
    (tmp_path / "semi.csv").write_text("日期;访客;下单\n2026-11-01;100;5\n2026-11-02;120;6\n", encoding="utf-8")
    out = _read(tmp_path / "semi.csv")
    assert out.rows[1] == {"日期": "2026-11-02", "访客": "120", "下单": "6"} and out.notice == "按分号分列"  # type: ignore[attr-defined]
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    for row in (["导出于 2026-12-01"], ["日期", "访客"], ["2026-11-01", 100]):
        sheet.append(row)
    book.save(tmp_path / "really_a_workbook.csv")
    out = _read(tmp_path / "really_a_workbook.csv")
    assert out.rows == [{"日期": "2026-11-01", "访客": 100}]  # type: ignore[attr-defined]
    assert out.notice.startswith("表头取第 2 行")  # type: ignore[attr-defined]


def test_duplicate_and_blank_header_names_keep_every_column(tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_text("日期,金额,金额,\n2026-11-01,1,2,3\n", encoding="utf-8")
    out = _read(tmp_path / "d.csv")
    assert out.rows == [{"日期": "2026-11-01", "金额": "1", "金额_2": "2", "col4": "3"}]  # type: ignore[attr-defined]
    assert "第 3 列「金额」重名，改叫「金额_2」" in out.notice  # type: ignore[attr-defined]


def test_a_gzip_bomb_and_a_broken_gzip_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import runner.tables.files as files

    monkeypatch.setattr(files, "MAX_UNPACKED", 1024 * 1024)
    (tmp_path / "big.csv.gz").write_bytes(gzip.compress(b"a,b\n" + b"1,2\n" * 600_000))
    with pytest.raises(ToolArgumentError, match="解压后超过 1 MB"):
        _read(tmp_path / "big.csv.gz")
    packed = gzip.compress("".join(f"{n},{n * n}\n" for n in range(5000)).encode())
    (tmp_path / "cut.csv.gz").write_bytes(packed[: len(packed) // 2])
    with pytest.raises(ToolArgumentError, match="是 gzip 压缩的，但解压失败"):
        _read(tmp_path / "cut.csv.gz")


def test_rows_that_leave_their_empty_ends_out_keep_the_header(tmp_path: Path) -> None:
    (tmp_path / "short.csv").write_text("编号,评论,追评,备注\nA1,物流很快\nA2,包装破了\nA3,好用,还会再买\n",
                                        encoding="utf-8")
    out = _read(tmp_path / "short.csv")
    assert out.rows == [  # type: ignore[attr-defined]
        {"编号": "A1", "评论": "物流很快", "追评": None, "备注": None},
        {"编号": "A2", "评论": "包装破了", "追评": None, "备注": None},
        {"编号": "A3", "评论": "好用", "追评": "还会再买", "备注": None}]
    assert out.notice is None  # type: ignore[attr-defined]


NAMES_FROM_A_STEP = """
name: names_from_a_step
inputs: {table: {type: file}}
steps:
  - {id: columns, tool: file.read, with: {path: columns.json}}
  - {id: load, tool: sheet.read, with: {path: "${{ inputs.table }}", names: "${{ steps.columns.data }}"}}
outputs: {first: "${{ steps.load.rows[0] }}"}
"""


def test_names_a_step_computes_are_not_guessed_before_the_run(project_dir: Path, server: FakeLLMServer) -> None:
    """The check before a run sees only what the inputs decide; a header the run names is not refused for it."""
    (project_dir / "columns.json").write_text('["day", "visitors"]', encoding="utf-8")
    (project_dir / "n.csv").write_text("2026-11-01,100\n2026-11-02,120\n", encoding="utf-8")
    path = write_playbook(project_dir, NAMES_FROM_A_STEP)
    done = cli("run", str(path), "-i", "table=n.csv", cwd=project_dir)
    assert done.returncode == 0, done.stdout + done.stderr
    (summary,) = (project_dir / ".playbook" / "runs").glob("*/run.json")
    assert json.loads(summary.read_text(encoding="utf-8"))["outputs"]["first"] == {"day": "2026-11-01",
                                                                                   "visitors": "100"}
