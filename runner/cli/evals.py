"""`playbook eval SUITE…`: run eval suites, print the table, write the reports; exit 0 / 1 / 2."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from runner.cli.app import app
from runner.cli.common import err, fail, out, project_here
from runner.errors import PlaybookError
from runner.i18n import _
from runner.wording import number

if TYPE_CHECKING:
    from collections.abc import Iterator

    from runner.evals.engine import Mode
    from runner.evals.parallel import SuiteOutcome


def suite_files(paths: list[Path]) -> list[Path]:
    """Suites named directly, and every *.yaml in a named folder (cassettes and baselines live elsewhere)."""
    files: list[Path] = []
    for path in paths:
        files += sorted(path.glob("*.yaml")) if path.is_dir() else [path]
    return files


@app.command("eval")
def eval_command(
    suites: Annotated[list[Path], typer.Argument(metavar="SUITE…", help=_("suite files, or folders of them (evals/)"))],
    record: Annotated[bool, typer.Option("--record", help=_("write every LLM reply into the suite's cassette"))
                      ] = False,
    replay: Annotated[bool, typer.Option("--replay", help=_("answer every LLM call from the cassette; no network"))]
    = False,
    repeat: Annotated[int | None, typer.Option("--repeat", min=1, help=_("runs per case (default: the suite's)"))
                      ] = None,
    k: Annotated[int | None, typer.Option("--k", min=1, help=_("a case passes if at least k runs pass"))] = None,
    concurrency: Annotated[int | None, typer.Option("--concurrency", min=1, help=_("cases at once"))] = None,
    jobs: Annotated[int | None, typer.Option("--jobs", "-j", min=1, help=_(
        "suites at once, each in a process of its own (default: one per core, at most 4)"))] = None,
    case: Annotated[list[str] | None, typer.Option("--case", help=_("only this case (repeatable)"))] = None,
    baseline: Annotated[Path | None, typer.Option("--baseline", help=_("compare with this report (default: the "
                                                                       "suite's saved baseline)"))] = None,
    save_baseline: Annotated[bool, typer.Option("--save-baseline", help=_("store this report as the baseline"))]
    = False,
    real_models: Annotated[bool, typer.Option("--real-models", help=_("ignore the suite's fake_llm and call the "
                                                                      "models in playbook.toml"))] = False,
    report: Annotated[Path | None, typer.Option("--report", help=_("folder for the JSON, markdown, HTML and JUnit "
                                                                   "reports"))] = None,
) -> None:
    """Run eval suites: assertions on outputs and steps, scripted approvals, record/replay, baselines.

    Exit codes: 0 every case passed and nothing regressed, 1 failures or regressions, 2 a suite error."""
    from runner.evals.parallel import default_jobs, evaluate_suites
    from runner.evals.session import EvalOptions

    if record and replay:
        err.print("[red]" + _("error") + "[/] " + _("--record and --replay exclude each other"))
        raise typer.Exit(2)
    mode: Mode = "record" if record else "replay" if replay else "live"
    options = EvalOptions(mode=mode, repeat=repeat, k=k, concurrency=concurrency, cases=case or [],
                          baseline=baseline, save_baseline=save_baseline, report_dir=report,
                          real_models=real_models)
    files = suite_files(suites)
    project_here()  # a bad project (playbook.toml, --project) is said once, here, before any suite starts
    try:
        worst = _show(evaluate_suites(files, options, jobs=jobs or default_jobs(len(files)),
                                      progress=lambda suite, line: err.print(f"  {line}", markup=False)))
    except KeyboardInterrupt:
        err.print(_("Interrupted; the suites shown above are complete, with their reports; run the others again"),
                  markup=False)
        raise typer.Exit(130) from None
    raise typer.Exit(worst)


def _show(results: Iterator[SuiteOutcome]) -> int:
    """Each suite's table, failures and comparison as it arrives; the worst exit code."""
    from runner.evals.report import failure_lines, step_name

    worst = 0
    for result in results:
        if result.error is not None or result.report is None:
            fail(PlaybookError(result.error or []))
            worst = 2
            continue
        r = result.report
        modes = {"live": _("live models"), "record": _("recording"), "replay": _("replay")}
        mode_word = modes.get(r["mode"], r["mode"])
        table = Table(title=_("{suite} ({mode}, N={n}, k={k})").format(suite=r["suite"], mode=mode_word,
                                                                       n=r["repeat"]["n"], k=r["repeat"]["k"]))
        cost = _("Cost ({currency})").format(currency=r.get("currency", "CNY"))
        for column in (_("Case"), _("Result"), _("Passed runs"), _("Score"), "tokens", cost, _("Seconds per run")):
            table.add_column(column)
        changes = {c["id"]: c for c in (r.get("comparison") or {}).get("cases", [])}
        for c in r["cases"]:
            mark = "[green]" + _("pass") + "[/]" if c["passed"] else "[red]" + _("FAIL") + "[/]"
            if changes.get(c["id"], {}).get("change") == "regressed":
                mark += " [red]" + escape(_("(regressed)")) + "[/]"
            table.add_row(c["id"], mark, f"{c['passes']}/{c['runs']}", number(c["mean_score"]), number(c["tokens"]),
                          f"{c['cost']:.4f}", number(c["seconds"]))
        out.print(table)
        if r.get("variants"):  # the suite compares versions of a step: each one's totals, side by side
            side = Table(title=_("Variants side by side"))
            for column in (_("Variant"), _("Cases passed"), _("Mean score"), "tokens", cost):
                side.add_column(column)
            for v in r["variants"]:
                side.add_row(v["variant"], f"{v['passed']}/{v['cases']}", number(v["score"]), number(v["tokens"]),
                             f"{v['cost']:.4f}")
            out.print(side)
        for c in r["cases"]:
            for line in failure_lines(c) if not c["passed"] else []:
                out.print(f"  [red]×[/] {c['id']}: ", end="")
                out.print(line, markup=False)
        comparison = r.get("comparison")
        if comparison:
            score = comparison["score"]
            against = _("Against the baseline: mean score {delta} (95% {low} … {high}); regressed cases: {cases}")
            out.print(against.format(
                delta=f"{score['mean_delta']:+.3f}", low=f"{score['interval'][0]:+.3f}",
                high=f"{score['interval'][1]:+.3f}", cases=", ".join(comparison["regressed_cases"]) or _("none")),
                markup=False)
            for c in comparison["cases"]:
                if c.get("diverged") and c["change"] in ("regressed", "still failing"):
                    out.print(_("  {case}: first diverging step {step} ({what})").format(
                        case=c["id"], step=step_name(c["diverged"]["step"]), what=c["diverged"]["what"]), markup=False)
        t = r["totals"]
        out.print(_("{passed}/{cases} cases passed · {tokens} tokens · cost {cost} · reports: {folder}").format(
            passed=t["passed"], cases=t["cases"], tokens=number(t["tokens"]), cost=f"{t['cost']:.4f}",
            folder=result.files["html"].parent), markup=False)
        worst = max(worst, 1 if result.failed else 0)
    return worst
