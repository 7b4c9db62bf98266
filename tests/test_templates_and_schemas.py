"""Templates (sandbox, native values, strict undefined) and `output:` schemas → pydantic models."""

from __future__ import annotations

from pathlib import Path

import pydantic
import pytest

from runner.dsl import template_check, templates
from runner.dsl.output_schema import SchemaError, to_json_schema, to_model, unwrap

pytestmark = pytest.mark.usefixtures("english")  # these tests check what the messages say, in English


def test_lone_expression_keeps_the_native_value() -> None:
    ctx = {"steps": {"load": {"rows": [{"a": 1}, {"a": 2}]}}}
    assert templates.render("${{ steps.load.rows }}", ctx) == [{"a": 1}, {"a": 2}]
    assert templates.render("  ${{ steps.load.rows | length }} ", ctx) == 2
    assert templates.render("共 ${{ steps.load.rows | length }} 条", ctx) == "共 2 条"


def test_dict_keys_win_over_dict_methods() -> None:
    assert templates.render("${{ s.items }}", {"s": {"items": [1]}}) == [1]


def test_json_braces_in_prompts_are_left_alone() -> None:
    text = '返回 {"name": "x"} 和 {{ raw }}'
    assert templates.render(text + " ${{ 1 + 1 }}", {}) == text + " 2"


def test_strict_undefined_and_sandbox_fail_with_clear_errors() -> None:
    with pytest.raises(templates.TemplateError, match="no field 'missing'"):
        templates.render("${{ inputs.missing }}", {"inputs": {}})
    with pytest.raises(templates.TemplateError, match="unsafe"):
        templates.render("${{ ''.__class__.__mro__ }}", {})
    with pytest.raises(templates.TemplateError, match="unsafe"):
        templates.render("${{ cycler.__init__.__globals__ }}", {})


def test_inspect_finds_references_but_not_loop_variables() -> None:
    text = "{% for r in steps.label.items %}${{ r.text }}${{ inputs.p }}{% endfor %}"
    refs, unsafe = template_check.inspect(text)
    chains = {r.chain for r in refs}
    assert ("steps", "label", "items") in chains and ("inputs", "p") in chains
    assert not any(c[0] == "r" for c in chains) and unsafe == []


def test_compact_schema_becomes_a_strict_model() -> None:
    schema = to_json_schema({"sentiment": {"enum": ["正面", "负面"]}, "tags": ["string"],
                             "note": "string?", "themes": [{"name": "string", "count": "integer"}]})
    model = to_model(schema)
    ok = model.model_validate({"sentiment": "正面", "tags": [], "themes": [{"name": "a", "count": 1}]})
    assert ok.model_dump()["note"] is None
    for bad in ({"sentiment": "好", "tags": [], "themes": []},
                {"sentiment": "正面", "tags": [], "themes": [], "extra": 1},
                {"sentiment": "正面", "themes": []},
                {"sentiment": "正面", "tags": [], "themes": [{"name": "a", "count": "many"}]}):
        with pytest.raises(pydantic.ValidationError):
            model.model_validate(bad)


def test_full_json_schema_is_accepted_and_non_objects_are_wrapped() -> None:
    full = {"type": "object", "properties": {"score": {"type": "number", "description": "0-10"}},
            "required": ["score"]}
    assert to_model(to_json_schema(full)).model_validate({"score": 7.5}).model_dump() == {"score": 7.5}
    as_list = to_model(to_json_schema(["string"]))
    assert unwrap(as_list, as_list.model_validate({"value": ["a"]}).model_dump()) == ["a"]


def test_bad_compact_schema_says_where() -> None:
    with pytest.raises(SchemaError, match=r"output.a.b: unknown type 'strin' \(did you mean 'string'\?\)"):
        to_json_schema({"a": {"b": "strin"}})


def test_the_width_filters_work_and_stay_bounded() -> None:
    """wordwrap and truncate take Jinja's environment first: bounded like center and indent, and they work."""
    from runner.dsl import templates

    assert templates.render("${{ 'aaa bbb ccc ddd' | wordwrap(7) }}", {}) == "aaa bbb\nccc ddd"
    long_text = "${{ '这是一段很长很长的文字 用来测试截断效果' | truncate(12) }}"
    assert templates.render(long_text, {}) == "这是一段很长很长的..."
    assert templates.render("${{ 'x' | center(5) }}", {}) == "  x  "
    for width_filter in ("wordwrap", "truncate", "center", "indent"):
        with pytest.raises(templates.TemplateError, match="too large"):
            templates.render(f"${{{{ 'x' | {width_filter}(10**9) }}}}", {})


def test_a_template_nested_too_deeply_is_refused_by_validate_and_one_it_passes_runs(tmp_path: Path) -> None:
    """90 nested brackets (or 400 `not`s) crashed validate with a RecursionError, or passed it and failed at run
    time; now validate refuses what the run could not compile, at its line, and what it passes runs."""
    from tests.conftest import cli, write_playbook

    def nested(n: int) -> str:
        return f"""
name: deep
steps:
  - {{id: a, tool: file.write, with: {{path: a.md, content: "${{{{ {'[' * n}1{']' * n} | string }}}}"}}}}
  - {{id: b, tool: file.write, with: {{path: b.md, content: "${{{{ {'not ' * n}true }}}}"}}}}
"""

    for n in (90, 400):
        path = write_playbook(tmp_path, nested(n), f"deep{n}.yaml")
        done = cli("validate", str(path), cwd=tmp_path)
        assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
        assert f"deep{n}.yaml:4:" in done.stderr and f"deep{n}.yaml:5:" in done.stderr and "nests too deeply" \
            in done.stderr, done.stderr
    passed = write_playbook(tmp_path, nested(50), "deep50.yaml")
    assert cli("validate", str(passed), cwd=tmp_path).returncode == 0
    ran = cli("run", str(passed), cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr


def test_growth_the_sandbox_did_not_see_is_bounded() -> None:
    """Three ways past the bounds, found by benchmarks/template_dos.py: `~` doubling a string in a loop (past the
    machine's memory), a format width taken from an argument (954 MB), and `sum(start=[])` adding lists (minutes)."""
    from runner.dsl import templates

    doubling = ("{% set s = namespace(v='ab') %}{% for i in range(60) %}{% set s.v = s.v ~ s.v %}{% endfor %}"
                "${{ s.v | length }}")
    with pytest.raises(templates.TemplateError, match="too large"):
        templates.render(doubling, {})
    with pytest.raises(templates.TemplateError, match="comes from an argument"):
        templates.render("${{ '{:>{}}'.format('x', 10 ** 9) }}", {})
    with pytest.raises(templates.TemplateError, match="took too long"):
        templates.render("${{ ([[1] * 1000] * 20000) | sum(start=[]) | length }}", {}, seconds=0.5)
    assert templates.render("${{ 'a' ~ 1 ~ 'b' }}", {}) == "a1b"  # and the ordinary uses still work
    assert templates.render("${{ [{'n': 2}, {'n': 3}] | sum(attribute='n') }}", {}) == 5
    assert templates.render("${{ '{:>4}'.format('x') }}", {}) == "   x"
