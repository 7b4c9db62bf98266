"""What `playbook import dify` makes of the 46 real Dify apps in tests/fixtures/import/dify: per file, the nodes
translated of all, what was left out and why, and the lines of the Dify file against those of the playbook.

    python benchmarks/import_corpus.py

Prints a markdown table (benchmarks/README.md holds a copy) and the totals. Runs in seconds: no model, no network.
"""

from __future__ import annotations

import collections
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from runner import i18n  # noqa: E402
from runner.importers.dify_steps import translate  # noqa: E402
from runner.importers.naming import slug  # noqa: E402
from runner.importers.write import playbook_text  # noqa: E402


def main() -> None:
    i18n.use("en")
    apps = sorted((ROOT / "tests" / "fixtures" / "import" / "dify" / "apps").glob("*.yml"))
    print("| file | DSL | mode | nodes translated | left out (why) | lines: Dify → playbook |")
    print("|---|---|---|---|---|---|")
    totals = collections.Counter()
    reasons: collections.Counter[str] = collections.Counter()
    for app in apps:
        source = app.read_text(encoding="utf-8")
        result = translate(yaml.safe_load(source), slug(app.stem.strip(), "imported"))
        written = playbook_text(result, app.name)
        body = [line for line in written.splitlines() if not line.startswith("#")]  # the header is the report
        counted = collections.Counter((e.kind, e.reason) for e in result.left_out)
        left = "; ".join(f"{kind}{f' ×{n}' if n > 1 else ''}: {reason}" for (kind, reason), n in counted.items())
        left = left or "—"
        print(f"| {app.name} | {result.version} | {result.mode} | {result.translated}/{result.nodes} | {left} | "
              f"{len(source.splitlines()):,} → {len(body):,} |")
        totals.update(nodes=result.nodes, translated=result.translated, files=1,
                      complete=int(not result.left_out), before=len(source.splitlines()), after=len(body))
        reasons.update(e.kind for e in result.left_out)
    print()
    print(f"{totals['files']} files, {totals['complete']} translated whole; {totals['translated']} of "
          f"{totals['nodes']} nodes ({totals['translated'] / totals['nodes']:.0%}); lines {totals['before']:,} → "
          f"{totals['after']:,} ({totals['after'] / totals['before']:.0%}). Left out, by node type: "
          + ", ".join(f"{kind} {count}" for kind, count in reasons.most_common()))


if __name__ == "__main__":
    main()
