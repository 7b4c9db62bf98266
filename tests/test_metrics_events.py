"""Event-level tables (one row per order): rolled up by each metric's own rule, checked against an
independent computation on real transactions (CDNOW, from the PyPI package lifetimes; UCI Online Retail checked
against pandas; see NOTICE)."""

from __future__ import annotations

import asyncio
import csv
import json
import re
import shlex
import shutil
from collections import defaultdict
from datetime import date
from pathlib import Path

import pytest

from runner.testing import FakeLLMServer, call_tool
from tests.conftest import ROOT, cli, run_playbook

ORDERS = ROOT / "examples" / "orders" / "cdnow_orders_1997q1.csv"
AGGREGATE = {"orders": "count", "buyers": "nunique(user_id)", "cds": "sum(quantity)", "revenue": "sum(amount)"}


def _truth() -> tuple[dict[str, dict[str, float]], dict[str, dict[str, float]]]:
    """Per day and per ISO week: orders, distinct buyers, CDs and revenue, computed here independently."""
    days: dict[str, list[dict[str, str]]] = defaultdict(list)
    weeks: dict[str, list[dict[str, str]]] = defaultdict(list)
    with ORDERS.open(encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            days[row["date"]].append(row)
            year, week, _ = date.fromisoformat(row["date"]).isocalendar()
            weeks[f"{year}-W{week:02d}"].append(row)

    def figures(rows: list[dict[str, str]]) -> dict[str, float]:
        return {"orders": len(rows), "buyers": len({r["user_id"] for r in rows}),
                "cds": sum(int(r["quantity"]) for r in rows),
                "revenue": round(sum(float(r["amount"]) for r in rows), 2)}

    return {d: figures(r) for d, r in days.items()}, {w: figures(r) for w, r in weeks.items()}


def test_kpi_report_on_an_order_export_matches_an_independent_computation(
        project_dir: Path, server: FakeLLMServer) -> None:
    server.add_rule("数据截至", {"headline": "订单走势平稳", "narrative": "见下表。", "actions": ["一、关注复购"]})
    done = run_playbook(ROOT / "playbooks" / "kpi_report.yaml", {"table": str(ORDERS), "aggregate": AGGREGATE})
    assert done.status == "done", done.error
    days, weeks = _truth()
    got_days: dict[str, dict[str, float]] = defaultdict(dict)
    for row in done.outputs["days"]:
        got_days[row["period"]][row["metric"]] = row["value"]
    assert {d: {k: round(v, 2) for k, v in f.items()} for d, f in got_days.items()} == days
    got_weeks: dict[str, dict[str, float]] = defaultdict(dict)
    for row in done.outputs["weeks"]:
        got_weeks[row["period"]][row["metric"]] = row["value"]
    assert {w: {k: round(v, 2) for k, v in f.items()} for w, f in got_weeks.items()} == weeks
    # distinct buyers of a week are not the sum of each day's distinct buyers
    week_days = [d for d in days if date.fromisoformat(d).isocalendar()[1] == 5]
    assert weeks["1997-W05"]["buyers"] < sum(days[d]["buyers"] for d in week_days)
    # the last day is a real day of orders, not dropped as "incomplete"
    assert done.outputs["daily"]["orders"]["period"] == "1997-02-19"
    # 1997-01-01 is a Wednesday and 1997-02-19 too: both end weeks are partial, never compared
    partial = {r["period"]: r for r in done.outputs["weeks"] if r["metric"] == "orders"}
    assert not partial["1997-W01"]["complete"] and not partial["1997-W08"]["complete"]
    assert partial["1997-W02"]["pct"] is None and "上一周期不完整" in partial["1997-W02"]["note"]
    latest = done.outputs["weekly"]["buyers"]
    assert latest["period"] == "1997-W07" and latest["value"] == weeks["1997-W07"]["buyers"]
    assert latest["pct"] == round((weeks["1997-W07"]["buyers"] - weeks["1997-W06"]["buyers"])
                                  / weeks["1997-W06"]["buyers"] * 100, 2)
    report = Path(done.outputs["report"]).read_text(encoding="utf-8")
    assert "buyers = nunique(user_id)" in report and f"由 {sum(f['orders'] for f in days.values()):,} 行明细" in report
    assert "1997-W01（5 天）" in report and "1997-W08（3 天）" in report


def test_an_order_export_without_aggregate_stops_with_a_command_that_works_when_pasted(
        project_dir: Path, server: FakeLLMServer) -> None:
    server.add_rule("数据截至", {"headline": "订单走势平稳", "narrative": "见下表。", "actions": ["一、关注复购"]})
    done = cli("run", str(ROOT / "playbooks" / "kpi_report.yaml"), "-i", f"table={ORDERS}", cwd=project_dir)
    assert done.returncode == 1, done.stdout
    assert "行的时间与前面重复" in done.stderr and "每个订单或事件一行" in done.stderr
    hint = next(line.strip() for line in done.stderr.splitlines() if line.strip().startswith("playbook run "))
    assert "'aggregate={records: count, users: nunique(user_id), quantity: sum(quantity), amount: sum(amount)}'" \
        in hint
    pasted = cli(*shlex.split(hint)[1:], cwd=project_dir)
    assert pasted.returncode == 0, pasted.stderr


def test_the_readme_command_for_order_exports_runs_as_pasted(project_dir: Path, server: FakeLLMServer) -> None:
    server.add_rule("数据截至", {"headline": "订单走势平稳", "narrative": "见下表。", "actions": ["一、关注复购"]})
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"```bash\n\s*(playbook run playbooks/kpi_report\.yaml -i table=examples/orders/.*?)\n\s*```",
                      readme, re.DOTALL)
    assert block is not None
    shutil.copytree(ROOT / "playbooks", project_dir / "playbooks")
    shutil.copytree(ROOT / "examples" / "orders", project_dir / "examples" / "orders")
    words = shlex.split(block.group(1).replace("\\\n", " "))
    assert words[:2] == ["playbook", "run"] and any(w.startswith("aggregate={") for w in words)
    done = cli(*words[1:], cwd=project_dir)
    assert done.returncode == 0, done.stderr
    (summary,) = (project_dir / ".playbook" / "runs").glob("*/run.json")
    outputs = json.loads(summary.read_text(encoding="utf-8"))["outputs"]
    assert {row["metric"] for row in outputs["weeks"]} == {"订单数", "买家数", "销售额"}


def test_identifier_columns_are_never_metrics(tmp_path: Path) -> None:
    table = tmp_path / "daily.csv"
    table.write_text("date,id,订单编号,uid,DAU\n" + "".join(
        f"2026-01-{d:02d},{d},{1000 + d},{7 * d},{100 + d}\n" for d in range(1, 11)), encoding="utf-8")
    loaded = asyncio.run(call_tool("metrics.load", {"path": str(table)}, run_dir=tmp_path))
    assert loaded.values == ["DAU"]
    with pytest.raises(ValueError, match="是标识，不是指标"):
        asyncio.run(call_tool("metrics.load", {"path": str(table), "values": ["uid"]}, run_dir=tmp_path))


def test_the_anomaly_method_says_which_points_had_less_history_than_the_window(tmp_path: Path) -> None:
    rows = [{"date": f"2026-01-{d:02d}", "v": 100 + d % 3} for d in range(1, 31)]
    out = asyncio.run(call_tool("metrics.anomalies", {"rows": rows, "time": "date", "value": "v", "window": 14},
                                run_dir=tmp_path))
    assert "前 5 个点之前不足 5 个点，不做判断" in out.method
    assert "接下来的 9 个点（到 2026-01-14 为止）只用之前的 5–13 个点判断，少于窗口" in out.method
    assert [p.score is None for p in out.points[:6]] == [True] * 5 + [False]


def test_column_names_as_they_are_brackets_full_width_and_spaces(tmp_path: Path) -> None:
    table = tmp_path / "flights.csv"
    lines = ["航班日期, 航班号,起飞延误（分钟）,票价 (元)"]
    flights = [("2026-03-01", "MU5101", 12, 980.0), ("2026-03-01", "CA1501", 30, 1020.0),
               ("2026-03-02", "MU5101", 0, 990.5), ("2026-03-02", "CZ3101", 45, 870.0),
               ("2026-03-02", "CA1501", 9, 1000.0)]
    lines += [f"{d},{n},{m},{p}" for d, n, m, p in flights]
    table.write_text("\n".join(lines) + "\n", encoding="utf-8")
    rules = {"航班数": "count", "平均延误": "mean(起飞延误(分钟))", "平均票价": "mean('票价 (元)')",
             "航班": "nunique(航班号)"}
    loaded = asyncio.run(call_tool("metrics.load", {"path": str(table), "time": "航班日期", "aggregate": rules},
                                   run_dir=tmp_path))
    by_day = {row["航班日期"]: row for row in loaded.rows}
    for day in ("2026-03-01", "2026-03-02"):
        todays = [f for f in flights if f[0] == day]
        assert by_day[day]["航班数"] == len(todays)
        assert by_day[day]["平均延误"] == pytest.approx(sum(f[2] for f in todays) / len(todays))
        assert by_day[day]["平均票价"] == pytest.approx(sum(f[3] for f in todays) / len(todays))
        assert by_day[day]["航班"] == len({f[1] for f in todays})
    assert loaded.rules["平均延误"] == "mean(起飞延误（分钟）)"  # the column as the file spells it


def test_chinese_identifiers_and_clock_times_are_never_metrics(tmp_path: Path) -> None:
    table = tmp_path / "flights.csv"
    rows = ["日期,航班号,机尾号,计划起飞,member,起飞延误（分钟）,客座"]
    for i in range(40):
        rows.append(f"2026-03-{1 + i % 5:02d},MU{5100 + i},B-{6000 + i},{(6 + i % 16) * 100 + (i * 7) % 60},"
                    f"{13800138000 + i * 7919},{(i * 13) % 50},{5000 + i * 97}")
    table.write_text("\n".join(rows) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match="行的时间与前面重复") as caught:
        asyncio.run(call_tool("metrics.load", {"path": str(table), "time": "日期"}, run_dir=tmp_path))
    hint = str(caught.value)
    assert "sum(起飞延误（分钟）)" in hint or '"sum(起飞延误（分钟）)"' in hint
    for column in ("航班号", "机尾号", "计划起飞", "member"):
        assert f"sum({column})" not in hint, hint
    assert "sum(客座)" in hint  # four-digit distinct whole numbers are still a measure (page views, seats)
    daily = tmp_path / "daily.csv"
    daily.write_text("日期,计划起飞,订单号,起飞延误（分钟）\n" + "".join(
        f"2026-03-{d:02d},{600 + d * 37 % 60 + (d % 12) * 100},{100200 + d},{d * 3}\n" for d in range(1, 29)),
        encoding="utf-8")
    loaded = asyncio.run(call_tool("metrics.load", {"path": str(daily), "time": "日期"}, run_dir=tmp_path))
    assert loaded.values == ["起飞延误（分钟）"]


RETAIL = sorted((ROOT / "tests" / "fixtures" / "online_retail").glob("*.csv.gz"))  # UCI Online Retail, see NOTICE


def test_a_real_shop_export_through_kpi_report_equals_pandas(project_dir: Path, server: FakeLLMServer) -> None:
    """Twelve days of a real online shop's export (one row per invoice line: cancellations as negative quantities,
    a third of the rows without a customer id, descriptions with commas in quotes), as one gzipped file: every
    day and every week kpi_report computes equals pandas' computation on the same rows."""
    import gzip

    import pandas as pd

    parts = [gzip.decompress(p.read_bytes()).decode("utf-8").splitlines(keepends=True) for p in RETAIL]
    export = project_dir / "online_retail_2010-12.csv.gz"
    export.write_bytes(gzip.compress("".join([parts[0][0], *(line for part in parts for line in part[1:])]).encode()))
    aggregate = {"行数": "count", "订单数": "nunique(InvoiceNo)", "买家数": "nunique(CustomerID)",
                 "件数": "sum(Quantity)", "均价": "mean(UnitPrice)"}
    server.add_rule("数据截至", {"headline": "销售平稳", "narrative": "见下表。", "actions": ["一、关注复购"]})
    done = cli("run", str(ROOT / "playbooks" / "kpi_report.yaml"), "-i", f"table={export.name}",
               "-i", "time=InvoiceDate", "-i", f"aggregate={json.dumps(aggregate, ensure_ascii=False)}",
               cwd=project_dir)
    assert done.returncode == 0, done.stdout + done.stderr
    (summary,) = (project_dir / ".playbook" / "runs").glob("*/run.json")
    outputs = json.loads(summary.read_text(encoding="utf-8"))["outputs"]

    frame = pd.read_csv(export)
    moments = pd.to_datetime(frame["InvoiceDate"])
    iso = moments.dt.isocalendar()
    keys = {"days": moments.dt.strftime("%Y-%m-%d"),
            "weeks": iso["year"].astype(str) + "-W" + iso["week"].astype(str).str.zfill(2)}
    for part, key in keys.items():
        grouped = frame.groupby(key)
        truth = pd.DataFrame({"行数": grouped.size(), "订单数": grouped["InvoiceNo"].nunique(),
                              "买家数": grouped["CustomerID"].nunique(), "件数": grouped["Quantity"].sum(),
                              "均价": grouped["UnitPrice"].mean()})
        got = {(r["period"], r["metric"]): r["value"] for r in outputs[part]}
        assert {period for period, _ in got} == set(truth.index), part
        for period, row in truth.iterrows():
            for metric in aggregate:
                # metrics.compare gives values to 4 decimals
                assert got[(period, metric)] == pytest.approx(float(row[metric]), abs=5e-5), (part, period, metric)
    assert len(frame) == 31_102 and len(keys["days"].unique()) == 12  # the figures above cover every row
