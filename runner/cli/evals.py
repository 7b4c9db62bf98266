"""`playbook eval SUITE…`: run eval suites, print the table, write the reports; exit 0 / 1 / 2."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from runner.cli.app import app
from runner.cli.common import err, fail, out, project_here
from runner.errors import PlaybookError

if TYPE_CHECKING:
    from runner.evals.engine import Mode


def suite_files(paths: list[Path]) -> list[Path]:
    """Suites named directly, and every *.yaml in a named folder (cassettes and baselines live elsewhere)."""
    files: list[Path] = []
    for path in paths:
        files += sorted(path.glob("*.yaml")) if path.is_dir() else [path]
    return files


@app.command("eval")
def eval_command(
    suites: Annotated[list[Path], typer.Argument(help="suite files, or folders of them (evals/)")],
    record: Annotated[bool, typer.Option("--record", help="write every LLM reply into the suite's cassette")] = False,
    replay: Annotated[bool, typer.Option("--replay", help="answer every LLM call from the cassette; no network")]
    = False,
    repeat: Annotated[int | None, typer.Option("--repeat", min=1, help="runs per case (default: the suite's)")] = None,
    k: Annotated[int | None, typer.Option("--k", min=1, help="a case passes if at least k runs pass")] = None,
    concurrency: Annotated[int | None, typer.Option("--concurrency", min=1, help="cases at once")] = None,
    case: Annotated[list[str] | None, typer.Option("--case", help="only this case (repeatable)")] = None,
    baseline: Annotated[Path | None, typer.Option("--baseline", help="compare with this report "
                                                  "(default: the suite's saved baseline)")] = None,
    save_baseline: Annotated[bool, typer.Option("--save-baseline", help="store this report as the baseline")]
    = False,
    real_models: Annotated[bool, typer.Option("--real-models", help="ignore the suite's fake_llm and call the "
                                              "models in playbook.toml")] = False,
    report: Annotated[Path | None, typer.Option("--report", help="folder for the JSON, markdown, HTML and JUnit "
                                                "reports")] = None,
) -> None:
    """Run eval suites: assertions on outputs and steps, scripted approvals, record/replay, baselines.

    Exit codes: 0 every case passed and nothing regressed, 1 failures or regressions, 2 a suite error."""
    from runner.evals.report import failure_lines, step_name
    from runner.evals.session import EvalOptions, evaluate_suite

    if record and replay:
        err.print("[red]error[/] --record and --replay exclude each other", markup=True)
        raise typer.Exit(2)
    mode: Mode = "record" if record else "replay" if replay else "live"
    options = EvalOptions(mode=mode, repeat=repeat, k=k, concurrency=concurrency, cases=case or [],
                          baseline=baseline, save_baseline=save_baseline, report_dir=report,
                          real_models=real_models)
    worst = 0
    for path in suite_files(suites):
        try:
            result = evaluate_suite(path, options, project=project_here(),
                                    progress=lambda line: err.print(f"  {line}", markup=False))
        except PlaybookError as exc:
            fail(exc)
            worst = 2
            continue
        r = result.report
        table = Table(title=f"{r['suite']} ({r['mode']}, N={r['repeat']['n']}, k={r['repeat']['k']})")
        for column in ("case", "result", "pass rate", "score", "tokens", "cost", "s/run"):
            table.add_column(column)
        changes = {c["id"]: c for c in (r.get("comparison") or {}).get("cases", [])}
        for c in r["cases"]:
            mark = "[green]pass[/]" if c["passed"] else "[red]FAIL[/]"
            if changes.get(c["id"], {}).get("change") == "regressed":
                mark += " [red](regressed)[/]"
            table.add_row(c["id"], mark, f"{c['passes']}/{c['runs']}", f"{c['mean_score']:.2f}", f"{c['tokens']:,}",
                          f"{c['cost']:.4f}", f"{c['seconds']:.2f}")
        out.print(table)
        for c in r["cases"]:
            for line in failure_lines(c) if not c["passed"] else []:
                out.print(f"  [red]×[/] {c['id']}: ", end="")
                out.print(line, markup=False)
        comparison = r.get("comparison")
        if comparison:
            score = comparison["score"]
            out.print(f"baseline: mean score {score['mean_delta']:+.3f} (95% {score['interval'][0]:+.3f} … "
                      f"{score['interval'][1]:+.3f}); regressed cases: "
                      f"{', '.join(comparison['regressed_cases']) or 'none'}", markup=False)
            for c in comparison["cases"]:
                if c.get("diverged") and c["change"] in ("regressed", "still failing"):
                    out.print(f"  {c['id']}: first diverging step {step_name(c['diverged']['step'])} "
                              f"({c['diverged']['what']})", markup=False)
        t = r["totals"]
        out.print(f"{t['passed']}/{t['cases']} cases passed · {t['tokens']:,} tokens · cost {t['cost']:.4f} · "
                  f"reports: {result.files['html'].parent}", markup=False)
        worst = max(worst, 1 if result.failed else 0)
    raise typer.Exit(worst)
