"""Custom assertions the shipped suites use (`python: checks:<function>`): each takes the value the
assertion's path names and the case, and returns a bool or (bool, reason)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def labels_cover_deduped(steps: dict[str, Any], case: Any) -> tuple[bool, str]:
    """Every comment left after dedupe got exactly one label."""
    deduped = steps["dedupe"]["count"]
    labelled = steps["label"]["items"]
    ids = [item.get("id") for item in labelled]
    ok = len(labelled) == deduped and len(set(map(str, ids))) == deduped
    return ok, f"{len(labelled)} labels for {deduped} deduped comments ({len(set(map(str, ids)))} distinct ids)"


def report_has_sections(path: str, case: Any) -> tuple[bool, str]:
    """The markdown report exists and has every section the case lists in `vars.sections`."""
    text = Path(path).read_text(encoding="utf-8")
    missing = [s for s in case.vars.get("sections", []) if s not in text]
    return not missing, f"missing sections: {', '.join(missing)}" if missing else "all sections present"


def new_and_gone_disjoint(outputs: dict[str, Any], case: Any) -> tuple[bool, str]:
    """No topic is reported both as new and as gone."""
    both = sorted(set(outputs["new"]) & set(outputs["gone"]))
    return not both, f"both new and gone: {', '.join(both[:5])}" if both else "disjoint"


def budget_adds_up(channels: list[dict[str, Any]], case: Any) -> tuple[bool, str]:
    """Channel budgets sum to the case's `vars.budget`."""
    total = sum(float(c["budget"]) for c in channels)
    return total == float(case.vars["budget"]), f"channels sum to {total:,.0f}, budget {case.vars['budget']:,}"


def rejected_then_approved(events: list[dict[str, Any]], case: Any) -> tuple[bool, str]:
    """The approval step saw a rejection (with a comment), then an approval."""
    actions = [e["action"] for e in events if e["action"] in ("approve", "reject")]
    commented = all(e.get("comment") for e in events if e["action"] == "reject")
    return actions == ["reject", "approve"] and commented, f"decisions: {actions}"


def title_sheet_ranked(workbook: str, case: Any) -> tuple[bool, str]:
    """The 标题评分 sheet ranks by the summed criteria, not by the model's order: the scripted scores give
    月光族的第一本账 18 points, the other two 14."""
    import openpyxl

    rows = list(openpyxl.load_workbook(workbook, read_only=True)["标题评分"].iter_rows(values_only=True))
    ranked = [(r[0], r[1]) for r in rows[1:]]
    return ranked[:1] == [("月光族的第一本账", 18)] and [p for _, p in ranked] == sorted(
        (p for _, p in ranked), reverse=True), f"ranking {ranked}"


def retro_numbers(outputs: dict[str, Any], case: Any) -> tuple[bool, str]:
    """Sum metrics.csv directly and compare with what the retro computed."""
    import csv

    path = Path(__file__).parent / case.vars["metrics"]
    rows = list(csv.DictReader(path.open(encoding="utf-8")))
    total = {c: sum(float(r[c]) for r in rows) for c in ("注册", "付费", "收入", "成本")}
    goals = {g["metric"]: g for g in outputs["goals"]}
    funnel = {s["stage"]: s for s in outputs["funnel"]}
    checks = {
        "注册 actual": goals["注册"]["actual"] == total["注册"],
        "注册 attainment": goals["注册"]["attainment_pct"] == round(total["注册"] / 9000 * 100, 2),
        "roi": outputs["roi"]["roi_pct"] == round((total["收入"] - total["成本"]) / total["成本"] * 100, 2),
        "付费 conversion": funnel["付费"]["from_previous_pct"] == round(total["付费"] / total["注册"] * 100, 2),
    }
    wrong = [name for name, ok in checks.items() if not ok]
    return not wrong, f"wrong: {', '.join(wrong)}" if wrong else "all four match"


def answers_cite_their_passages(answers: list[dict[str, Any]], case: Any) -> tuple[bool, str]:
    """kb_answer: each answer's basis is one of the passages found for its question, or 无依据 — never a source
    the knowledge base does not have."""
    wrong = [a["question"] for a in answers
             if a["basis"] != "无依据" and not all(part.strip() in a["sources"] for part in a["basis"].split("；"))]
    return not wrong, f"cites a passage it was not given: {', '.join(wrong)}" if wrong else "every basis is real"
