"""A self-contained HTML report: cases, failing assertions, and each step's output side by side with the
baseline's, diffed line by line."""

from __future__ import annotations

import difflib
import json
from html import escape
from typing import Any

from runner.evals.report import change_word, failure_lines, step_name, summary_line
from runner.i18n import _
from runner.wording import number

STYLE = """
body{font:14px/1.5 system-ui,"Noto Sans CJK SC",sans-serif;margin:2em auto;max-width:1200px;color:#222}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ddd;padding:4px 8px;vertical-align:top}
.pass{color:#16794c}.fail{color:#b42318;font-weight:600}.muted{color:#777}
pre{white-space:pre-wrap;margin:0;font-size:12px}details{margin:.3em 0}
table.diff{font:12px monospace;width:100%}.diff_add{background:#dfd}.diff_chg{background:#ffd}
.diff_sub{background:#fdd}td.diff_header{color:#999}.diff_next{display:none}
"""


def to_html(report: dict[str, Any]) -> str:
    comparison = report.get("comparison") or {}
    changes = {c["id"]: c for c in comparison.get("cases", [])}
    language = _("en")
    title = escape(_("Eval {suite}").format(suite=report["suite"]))
    heading = escape(_("Eval: {suite} ({playbook})").format(suite=report["suite"], playbook=report["playbook"]))
    parts = [f"<!doctype html><html lang='{language}'><head><meta charset='utf-8'><title>{title}</title>"
             f"<style>{STYLE}</style></head><body><h1>{heading}</h1><p>{escape(summary_line(report))}</p>",
             f"<p class='muted'>{escape(report['rule'])}</p>"]
    if comparison:
        score = comparison["score"]
        verdict = "<span class='fail'>" + escape(change_word("regressed")) + "</span>" if comparison["regressed"] \
            else "<span class='pass'>" + escape(_("no regression")) + "</span>"
        against = escape(_("Against the baseline ({when}): ").format(when=comparison.get("baseline_created_at")))
        change = _("Mean score change {delta}, 95% interval {low} … {high}.").format(
            delta=f"{score['mean_delta']:+.3f}", low=f"{score['interval'][0]:+.3f}",
            high=f"{score['interval'][1]:+.3f}")
        parts.append(f"<h2>{against}{verdict}</h2><p>{escape(change)}</p>"
                     f"<p class='muted'>{escape(comparison['rule'])}</p>")
    parts.append(_row("th", [_("Case"), _("Result"), _("Pass rate"), _("Score"), _("Against the baseline"), "tokens",
                             _("Cost ({currency})").format(currency=report.get("currency", "CNY"))], "<table>"))
    for c in report["cases"]:
        change = changes.get(c["id"], {})
        parts.append(f"<tr><td><a href='#{escape(c['id'])}'>{escape(c['id'])}</a></td>{_result(c['passed'])}"
                     f"<td>{c['passes']}/{c['runs']}</td><td>{c['mean_score']:.2f}</td>"
                     f"<td>{escape(change_word(change.get('change', '—')))}</td><td>{number(c['tokens'])}</td>"
                     f"<td>{c['cost']:.4f}</td></tr>")
    parts.append("</table>")
    baseline_steps = {c["id"]: c.get("baseline_steps") for c in report["cases"]}
    for c in report["cases"]:
        parts.append(_case_section(c, changes.get(c["id"], {}), baseline_steps.get(c["id"])))
    parts.append("</body></html>")
    return "".join(parts)


def _row(cell: str, texts: list[str], before: str = "") -> str:
    return before + "<tr>" + "".join(f"<{cell}>{escape(t)}</{cell}>" for t in texts) + "</tr>"


def _result(passed: bool) -> str:
    return "<td class='pass'>" + escape(_("pass")) + "</td>" if passed else \
        "<td class='fail'>" + escape(_("FAIL")) + "</td>"


def _case_section(case: dict[str, Any], change: dict[str, Any], baseline_steps: list[dict[str, Any]] | None) -> str:
    out = [f"<h2 id='{escape(case['id'])}'>{escape(case['id'])} {'✓' if case['passed'] else '×'}</h2>"]
    if not case["passed"]:
        out.append("<ul>" + "".join(f"<li>{escape(line)}</li>" for line in failure_lines(case)) + "</ul>")
    if change.get("diverged"):
        d = change["diverged"]
        said = _("First diverging step: {step} — {what}").format(step=step_name(d["step"]), what=d["what"])
        out.append(f"<p>{escape(said)}</p>")
    out.append(_row("th", [_("Assertion"), _("Step"), _("Runs passed"), _("Score"), _("Detail")], "<table>"))
    for a in case["assertions"]:
        out.append(f"<tr><td>{escape(a['label'])}</td><td>{escape(a.get('step') or '')}</td>{_result(a['passed'])[:-5]}"
                   f" {a['passed_runs']}/{case['runs']}</td><td>{a['mean_score']:.2f}</td>"
                   f"<td>{escape(a['reason'] or '')}</td></tr>")
    out.append("</table>")
    old = {s["id"]: s for s in baseline_steps or []}
    for step in case["steps"]:
        before = old.get(step["id"])
        label = escape(step_name(step["id"]))
        if before is not None and before.get("digest") != step["digest"]:
            table = difflib.HtmlDiff(wrapcolumn=70).make_table(
                _lines(before.get("output")), _lines(step.get("output")), _("baseline"), _("now"), context=True,
                numlines=2)
            changed = escape(_("changed"))
            out.append(f"<details open><summary><b>{label}</b> {changed}</summary>{table}</details>")
        else:
            note = escape(_(" (same as baseline)")) if before is not None else ""
            out.append(f"<details><summary>{label}{note}</summary><pre>{escape(_text(step.get('output')))}</pre>"
                       "</details>")
    return "".join(out)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, indent=1, default=str)


def _lines(value: Any) -> list[str]:
    return _text(value).splitlines()
