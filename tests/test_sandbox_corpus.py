"""Hostile templates — sandbox escapes, file and environment access, CPU and memory bombs — are refused or
bounded: each ends within the render budget (2 s here) and allocates under 64 MB."""

from __future__ import annotations

import time
import tracemalloc
from pathlib import Path

import pytest

from runner.dsl import templates
from tests.conftest import cli, write_playbook

pytestmark = pytest.mark.usefixtures("english")  # these tests check what the messages say, in English

ESCAPES = [
    "${{ ''.__class__.__mro__[1].__subclasses__() }}",
    "${{ ().__class__.__bases__[0].__subclasses__() }}",
    "${{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "${{ joiner.__init__.__globals__ }}",
    "${{ namespace.__init__.__globals__.__builtins__.open('/etc/passwd').read() }}",
    "${{ lipsum.__globals__['os'].environ }}",
    "${{ range.__self__ }}",
    "${{ inputs.__class__ }}",
    "${{ steps['__class__'] }}",
    "${{ (inputs|attr('__class__')).__mro__ }}",
    "${{ self._TemplateReference__context }}",
    "${{ config }}",
    "${{ request }}",
    "${{ [].append(1) }}",
    "${{ {}.update({'a': 1}) }}",
    "${{ 'x'.format.__globals__ }}",
    "${{ '{0.__class__}'.format('a') }}",
    "${{ '{0.__init__.__globals__}'.format(cycler) }}",
    "${{ inputs.items.__self__ }}",
    "{% set x = namespace() %}${{ x.__class__.__init__ }}",
    "${{ dict.__subclasses__() }}",
    "${{ ''|attr('__class__') }}",
    "${{ env.PATH }}",
    "${{ secrets.HOME }}",
    "{% import 'os' as os %}",
    "{% include '/etc/passwd' %}",
    "{% extends '/etc/passwd' %}",
    "{% from '/etc/passwd' import x %}",
    "${{ self.__init__.__globals__ }}",
    "${{ loop.__class__ }}",
]

BOMBS = [
    "${{ (9 ** (9 ** 10)) % 7 }}",
    "${{ 9 ** 9 ** 9 ** 9 }}",
    "${{ 2 ** 10000000 }}",
    "${{ ('a' * 3 * 10**9) | length }}",
    "${{ 'a' * 10**8 }}",
    "${{ [1] * 10**9 }}",
    "${{ ([0] * 4000000) * 4000000 }}",
    "${{ 'a' | center(2e9) }}",
    "${{ 'a' | center(2000000000) }}",
    "${{ 'a'.ljust(2000000000) }}",
    "${{ 'a'.zfill(10**9) }}",
    "${{ 'a\tb'.expandtabs(10**9) }}",
    "${{ 'ab' | indent(10**9) }}",
    "${{ '%2000000000s' % 'a' }}",
    "${{ '%*s' % (10**9, 'a') }}",
    "${{ '{:>2000000000}'.format('a') }}",
    "${{ '%2000000000s' | format('a') }}",
    "${{ ('a' * 1000000) | replace('a', 'b' * 1000000) }}",
    "${{ ('a' * 1000000).replace('', 'bbbbbbbbbbbbbb') }}",
    "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
    "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}",
    "${{ range(100000) | map('string') | join | length }}",
    "${{ lipsum(1000000000) | length }}",
    "{% set ns = namespace(s='a') %}{% for i in range(40) %}{% set ns.s = ns.s + ns.s %}{% endfor %}${{ ns.s|length }}",
    "{% for i in range(100000) recursive %}${{ loop(range(100000)) }}{% endfor %}",
    "${{ (range(100000) | list) * 100000 }}",
    "${{ 'a' * 4000000 + 'b' * 4000000 }}",
]


def _render(text: str) -> tuple[str, float, int]:
    tracemalloc.start()
    started = time.monotonic()
    try:
        result = templates.render(text, {"inputs": {"a": 1}, "steps": {}, "env": {}, "secrets": {}},
                                  seconds=2.0)
        outcome = f"rendered {len(str(result)):,} characters"
    except templates.TemplateError as exc:
        outcome = f"refused: {exc}"
    seconds = time.monotonic() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return outcome, seconds, peak


@pytest.mark.parametrize("text", ESCAPES + BOMBS)
def test_a_hostile_template_is_refused_or_bounded(text: str) -> None:
    outcome, seconds, peak = _render(text)
    assert seconds < 10 and peak < 64 * 1024 * 1024, (outcome, seconds, peak)
    if text in BOMBS or "__" in text or "import" in text or "include" in text or "extends" in text:
        assert outcome.startswith("refused") or len(outcome) < 60, outcome
    assert "root:" not in outcome and "/bin/" not in outcome


def test_the_corpus_is_large() -> None:
    assert len(ESCAPES) + len(BOMBS) >= 50


def test_validate_does_not_fold_a_huge_power_and_a_step_timeout_holds_for_rendering(tmp_path: Path) -> None:
    path = write_playbook(tmp_path, """
name: bomb
steps:
  - id: spin
    timeout: 3s
    tool: file.write
    with:
      path: x.md
      content: "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
  - {id: power, tool: file.write, with: {path: y.md, content: "${{ (9 ** (9 ** 10)) % 7 }}"}}
""")
    started = time.monotonic()
    checked = cli("validate", str(path), cwd=tmp_path, timeout=60)
    assert checked.returncode == 0, checked.stderr
    done = cli("run", str(path), cwd=tmp_path, timeout=120)
    # whichever bound trips first — the loop count, or the render deadline on a machine loaded by other work
    assert done.returncode == 1 and "step 'spin'" in done.stderr
    assert "loops ran more than" in done.stderr or "took too long to render" in done.stderr, done.stderr
    assert time.monotonic() - started < 60
