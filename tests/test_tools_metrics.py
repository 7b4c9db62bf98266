"""metrics.*: exact period deltas, anomaly flags (and the NAB ad-exchange figures), CJK charts."""

from __future__ import annotations

import asyncio
import csv
import json
import warnings
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from runner.testing import call_tool

pytestmark = pytest.mark.usefixtures("english")  # these tests check what the messages say, in English

NAB = Path(__file__).parent / "fixtures" / "metrics"


def call(name: str, tmp_path: Path, **args: Any) -> Any:
    return asyncio.run(call_tool(name, args, run_dir=tmp_path))


def kpi_rows() -> list[dict[str, Any]]:
    start = datetime(2026, 11, 2)  # a Monday
    return [{"date": (start + timedelta(days=d)).strftime("%Y-%m-%d"), "DAU": str(1000 + 10 * d),
             "收入": f"{100 + d:,}"} for d in range(14)]


def test_day_and_week_deltas_are_exact(tmp_path: Path) -> None:
    daily = call("metrics.compare", tmp_path, rows=kpi_rows(), values=["DAU"], period="day")
    last = daily.latest["DAU"]
    assert (last.period, last.value, last.previous, last.delta) == ("2026-11-15", 1130, 1120, 10)
    assert last.pct == round(10 / 1120 * 100, 2)
    weekly = call("metrics.compare", tmp_path, rows=kpi_rows(), values=["DAU", "收入"], period="week")
    dau = [r for r in weekly.rows if r.metric == "DAU"]
    assert [r.value for r in dau] == [sum(1000 + 10 * d for d in range(7)), sum(1000 + 10 * d for d in range(7, 14))]
    assert dau[1].delta == 490 and weekly.latest["收入"].value == sum(100 + d for d in range(7, 14))


def test_injected_spike_is_flagged_with_the_method_stated(tmp_path: Path) -> None:
    rows = [{"timestamp": f"2026-11-{1 + i // 24:02d} {i % 24:02d}:00:00", "value": 100 + (i % 24)}
            for i in range(24 * 5)]
    rows[100]["value"] = 400
    out = call("metrics.anomalies", tmp_path, rows=rows)
    assert [p.time for p in out.anomalies] == ["2026-11-05 04:00:00"]
    assert "compared with the median and MAD of the 28 points before it" in out.method


def test_nab_ad_exchange_figures(tmp_path: Path) -> None:
    """Not a pass/fail quality bar: prints precision and recall against NAB's labelled windows."""
    windows = json.loads((NAB / "anomaly_windows.json").read_text())
    for name in ("exchange-2_cpc_results.csv", "exchange-3_cpm_results.csv"):
        rows = list(csv.DictReader((NAB / name).open()))
        labelled = [(datetime.fromisoformat(a), datetime.fromisoformat(b))
                    for a, b in windows[f"realAdExchange/{name}"]]
        out = call("metrics.anomalies", tmp_path, rows=rows)
        flagged = [datetime.fromisoformat(p.time) for p in out.anomalies]
        inside = sum(1 for f in flagged if any(a <= f <= b for a, b in labelled))
        found = sum(1 for a, b in labelled if any(a <= f <= b for f in flagged))
        print(f"{name}: {len(flagged)} flagged, precision {inside / max(1, len(flagged)):.3f}, "
              f"window recall {found}/{len(labelled)}")
        assert len(out.points) == len(rows)


def test_chart_renders_chinese_without_missing_glyphs(tmp_path: Path) -> None:
    rows = kpi_rows()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = call("metrics.chart", tmp_path, path="dau.png", rows=rows, values=["DAU"], title="日活跃用户（DAU）",
                   ylabel="人数", anomalies=[{"time": rows[5]["date"], "value": rows[5]["DAU"]}])
    assert not [w for w in caught if "missing from font" in str(w.message)]
    data = Path(out.path).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000 and out.points == 14


def test_load_cleans_a_gbk_kpi_table_and_finds_its_metrics(tmp_path: Path) -> None:
    table = "日期,渠道,DAU,付费率\n2026/11/03,应用商店,\"1,240\",3.5%\n2026/11/01,应用商店,\"1,100\",\n" \
            "2026/11/02,应用商店,\"1,180\",3.1%\n"
    (tmp_path / "kpi.csv").write_bytes(table.encode("gbk"))
    out = call("metrics.load", tmp_path, path=str(tmp_path / "kpi.csv"), time="日期")
    assert out.values == ["DAU", "付费率"]  # 渠道 is text, kept but not a metric
    assert [r["日期"] for r in out.rows] == ["2026-11-01", "2026-11-02", "2026-11-03"]
    assert [r["DAU"] for r in out.rows] == [1100.0, 1180.0, 1240.0] and out.rows[0]["渠道"] == "应用商店"
    assert out.missing == {"DAU": 0, "付费率": 1} and (out.start, out.end) == ("2026-11-01", "2026-11-03")
    deltas = call("metrics.compare", tmp_path, rows=out.rows, time="日期", values=["DAU"])
    assert deltas.latest["DAU"].delta == 60


def test_load_reads_the_nab_series_hourly(tmp_path: Path) -> None:
    out = call("metrics.load", tmp_path, path=str(NAB / "exchange-2_cpc_results.csv"), time="timestamp")
    # the real series repeats one hour (2011-08-24 12:00:01, found with `sort | uniq -d`)
    assert out.values == ["value"] and out.count == 1624 and out.duplicate_times == 1
    assert out.start == "2011-07-01 00:00:01" and out.rows[0]["value"] > 0


def test_load_names_the_bad_cell(tmp_path: Path) -> None:
    (tmp_path / "bad.csv").write_text("date,DAU\n2026-11-01,100\n2026-11-02,一百\n", encoding="utf-8")
    try:
        call("metrics.load", tmp_path, path=str(tmp_path / "bad.csv"), values=["DAU"])
    except ValueError as exc:
        assert "line 3 column 'DAU': '一百' is not a number" in str(exc)
    else:
        raise AssertionError("a text cell in a metric column must fail")


def test_a_running_week_is_not_compared_with_a_full_one(tmp_path: Path) -> None:
    rows = [*kpi_rows(), {"date": "2026-11-16", "DAU": "2000", "收入": "1"}]  # Monday of a third week
    weekly = call("metrics.compare", tmp_path, rows=rows, values=["DAU"], period="week")
    last = weekly.rows[-1]
    assert (last.period, last.points, last.complete) == ("2026-W47", 1, False)
    assert weekly.latest["DAU"].period == "2026-W46" and weekly.latest["DAU"].complete
