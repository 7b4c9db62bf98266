"""check.numbers, check.ad_law, trend.diff and the `cross` template filter."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from runner.dsl import templates
from runner.testing import call_tool

pytestmark = pytest.mark.usefixtures("english")  # these tests check what the messages say, in English

WEIBO = Path(__file__).parent / "fixtures" / "trends"


def call(name: str, tmp_path: Path, **args: Any) -> Any:
    return asyncio.run(call_tool(name, args, run_dir=tmp_path))


FACTS = [{"metric": "DAU", "period": "2026-11-23", "value": 12400.0, "previous": 11800.0, "delta": 600.0,
          "pct": 5.08}, {"metric": "付费率", "period": "2026-11-23", "value": 0.0352, "previous": 0.031}]


def test_numbers_from_the_table_pass_in_their_usual_forms(tmp_path: Path) -> None:
    text = "11月23日 DAU 达到 1.24万（12,400），比前一天多 600，增长 5.08%（约 5.1%）；付费率 3.52%。"
    out = call("check.numbers", tmp_path, text=text, facts=FACTS)
    assert out.ok and out.invented == [] and len(out.numbers) == 8


def test_an_invented_number_fails_and_is_shown(tmp_path: Path) -> None:
    text = "DAU 达到 12,400，环比增长 7.3%，预计下周突破 13,000。"
    out = call("check.numbers", tmp_path, text=text, facts=FACTS, fail=False)
    assert not out.ok and out.invented == ["7.3%", "13,000"]
    with pytest.raises(ValueError, match=r"numbers not in the computed table: 7\.3%, 13,000"):
        call("check.numbers", tmp_path, text=text, facts=FACTS)


def test_ad_law_words_are_flagged_with_their_category(tmp_path: Path) -> None:
    copy = ["全网最低价，效果最佳！", "双十一签到 7 天领好礼", {"text": "国家级品质 100% 好评"}]
    out = call("check.ad_law", tmp_path, texts=copy, extra_words=["秒杀"])
    assert [r.ok for r in out.results] == [False, True, False] and out.flagged == 2
    assert {(h.word, h.category) for h in out.results[0].hits} == {("全网最低", "绝对化承诺"), ("最佳", "最高级用语")}
    assert [h.word for h in out.results[2].hits] == ["国家级", "100%"]
    assert call("check.ad_law", tmp_path, texts=["限时秒杀"], extra_words=["秒杀"]).flagged == 1


def test_trend_diff_on_two_real_weibo_days_matches_a_set_computation(tmp_path: Path) -> None:
    day1 = json.loads((WEIBO / "2026-08-17.json").read_text(encoding="utf-8"))
    day2 = json.loads((WEIBO / "2026-08-18.json").read_text(encoding="utf-8"))
    out = call("trend.diff", tmp_path, current=day2, previous=day1, min_change=10)
    keys1 = {t["title"].replace("#", "").strip() for t in day1}
    keys2 = {t["title"].replace("#", "").strip() for t in day2}
    assert {i.title.replace("#", "").strip() for i in out.new} == keys2 - keys1
    assert {g["title"].replace("#", "").strip() for g in out.gone} == keys1 - keys2
    assert out.counts["new"] + out.counts["rising"] + out.counts["falling"] + out.counts["steady"] == len(out.items)
    assert all(i.change is not None and i.change >= 10 for i in out.rising)
    first = call("trend.diff", tmp_path, current=day1)
    assert first.first_run and first.counts["new"] == 0 and first.counts["steady"] == len(first.items)


def test_cross_filter_pairs_two_lists() -> None:
    pairs = templates.render("${{ ['学生', '白领'] | cross(['打卡', '抽奖'], 'persona', 'concept') }}", {})
    assert pairs == [{"persona": "学生", "concept": "打卡"}, {"persona": "学生", "concept": "抽奖"},
                     {"persona": "白领", "concept": "打卡"}, {"persona": "白领", "concept": "抽奖"}]


def test_collect_reads_a_hot_list_api_shaped_like_weibos(tmp_path: Path) -> None:
    api = {"ok": 1, "data": {"realtime": [{"word": "新品发布会", "num": 120}, {"word": "AI 手机", "num": 90}],
                             "hotgov": {"word": "置顶"}}}
    out = call("trend.collect", tmp_path, sources=[{"url": "https://weibo.com/ajax/side/hotSearch", "data": api},
                                                  {"name": "另一个榜", "data": [{"title": "#AI手机#"}]}])
    weibo = "weibo.com/ajax/side/hotSearch"
    assert [(i.title, i.rank, i.sources) for i in out.items] == [
        ("新品发布会", 1, [weibo]), ("AI 手机", 2, [weibo, "另一个榜"])]
    assert out.merged == 1
