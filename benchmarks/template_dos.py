"""Hostile templates and inputs, each rendered as a step would (the sandbox, a 1 s step timeout), each in a process of
its own so its peak memory is its own: how long until it ends (refused, or rendered) and how much memory it took.
The bar (issue 24): every case under 2 s and under 100 MB above the process's baseline.

    python benchmarks/template_dos.py

Prints a markdown table: case, outcome (the error's first words, or "rendered"), seconds, peak MB above baseline.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIG_LIST = list(range(200_000))

CASES: dict[str, str] = {
    "huge power": "${{ 9 ** 9 ** 9 }}",
    "power of a big base": "${{ 123456789 ** 99999 }}",
    "string repeat": "${{ 'x' * 10 ** 9 }}",
    "list repeat": "${{ [1] * 10 ** 9 }}",
    "join of a repeated list": "${{ ''.join(['ab'] * 10 ** 8) }}",
    "join filter on a repeated list": "${{ (['ab'] * 10 ** 8) | join }}",
    "doubling with ~ in a loop": "{% set s = namespace(v='ab') %}{% for i in range(60) %}"
                                 "{% set s.v = s.v ~ s.v %}{% endfor %}${{ s.v | length }}",
    "doubling with + in a loop": "{% set s = namespace(v=[1]) %}{% for i in range(60) %}"
                                 "{% set s.v = s.v + s.v %}{% endfor %}${{ s.v | length }}",
    "format with a nested width": "${{ '{:>{}}'.format('x', 10 ** 9) }}",
    "format with a huge width": "${{ '{:>1000000000}'.format('x') }}",
    "%-format with a computed width": "${{ '%*d' % (10 ** 9, 1) }}",
    "ljust": "${{ 'x'.ljust(10 ** 9) }}",
    "center filter": "${{ 'x' | center(10 ** 9) }}",
    "indent filter": "${{ 'a\nb' | indent(10 ** 9) }}",
    "wordwrap filter": "${{ 'x' | wordwrap(10 ** 9) }}",
    "replace blow-up": "${{ ('a' * 1000000).replace('a', 'aaaaaaaaaa' * 100) }}",
    "replace filter blow-up": "${{ ('a' * 1000000) | replace('a', 'b' * 1000) }}",
    "sum with a list start": "${{ ([[1] * 1000] * 20000) | sum(start=[]) | length }}",
    "sort a big list": "${{ range(10 ** 8) | list | sort | length }}",
    "unique on a big list": "${{ range(10 ** 8) | unique | list | length }}",
    "cross product": "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}",
    "nested comprehension-like loops": "{% for a in range(3000) %}{% for b in range(3000) %}${{ a * b }}"
                                       "{% endfor %}{% endfor %}",
    "range of a billion": "${{ range(10 ** 9) | list | length }}",
    "recursive macro": "{% macro f(n) %}${{ f(n + 1) }}{% endmacro %}${{ f(0) }}",
    "self-calling loop": "{% for x in range(10) recursive %}${{ loop([1, 2]) }}{% endfor %}",
    "deep nesting": "${{ " + "[" * 200 + "1" + "]" * 200 + " }}",
    "many nots": "${{ " + "not " * 3000 + "true }}",
    "lipsum": "${{ lipsum(10 ** 6) }}",
    "big int to string": "${{ (10 ** 299999) | string | length }}",
    "dict of a big range": "${{ dict.fromkeys(range(10 ** 8)) | length }}",
    "string multiply by a bool trick": "${{ 'ab' * (10 ** 8 > 1) * 10 ** 8 }}",
    "tojson of a repeated list": "${{ ([[1, 2, 3]] * 10 ** 7) | tojson | length }}",
    "batch filter": "${{ range(10 ** 8) | batch(3) | list | length }}",
    "map over a huge range": "${{ range(10 ** 8) | map('string') | list | length }}",
    "selectattr over a huge range": "${{ range(10 ** 8) | select('odd') | list | length }}",
    "huge input, big sort": "${{ inputs.big | sort | reverse | list | length }}",
}

ONE = """
import json, resource, sys, time
from runner.dsl import templates
case = sys.argv[1]
context = {"inputs": {"big": list(range(200_000))}}
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
started = time.monotonic()
try:
    templates.render(case, context, seconds=1.0)  # the step's timeout: the bar below is twice it
    outcome = "rendered"
except templates.TemplateError as exc:
    outcome = str(exc).split(": ", 1)[-1][:70]
seconds = time.monotonic() - started
peak = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024
print(json.dumps({"outcome": outcome, "seconds": seconds, "mb": peak}))
"""


def main() -> None:
    print("| case | outcome | seconds | peak MB above baseline |")
    print("|---|---|---|---|")
    over = 0
    for name, template in CASES.items():
        try:
            done = subprocess.run([sys.executable, "-c", ONE, template], capture_output=True, text=True, timeout=60,
                                  cwd=ROOT)
            result = json.loads(done.stdout.strip().splitlines()[-1])
        except subprocess.TimeoutExpired:
            result = {"outcome": "KILLED after 60 s", "seconds": 60.0, "mb": float("nan")}
        except (IndexError, json.JSONDecodeError):
            why = (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1][:70]
            result = {"outcome": f"CRASHED: {why}", "seconds": float("nan"), "mb": float("nan")}
        bad = not (result["seconds"] < 2.0 and result["mb"] < 100)
        over += bad
        print(f"| {name} | {result['outcome'].replace('|', '/')} | {result['seconds']:.2f}{' ✗' if bad else ''} | "
              f"{result['mb']:.0f} |", flush=True)
    print(f"\n{len(CASES)} cases, {over} over 2 s or 100 MB")


if __name__ == "__main__":
    main()
