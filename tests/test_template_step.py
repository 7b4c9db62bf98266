"""`template` steps compute a value from expressions with no model or tool call: a native value, a text, a
mapping whose fields later steps read (checked at validate), one value per map item."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.dsl.validate import load_and_validate
from runner.errors import PlaybookValidationError
from runner.testing import FakeLLMServer
from tests.conftest import run_playbook, write_playbook

pytestmark = pytest.mark.usefixtures("english")

MERGE = """
name: merge
inputs:
  names: {type: list, default: [物流, 客服, 价格]}
  channel: {default: 小红书}
steps:
  - id: first_two
    template: ${{ inputs.names[:2] }}
  - id: brief
    template: |
      渠道：${{ inputs.channel }}
      {% for name in steps.first_two.output %}- ${{ name }}
      {% endfor %}
  - id: card
    template: {title: "${{ inputs.channel }}周报", count: "${{ inputs.names | length }}", names: "${{ inputs.names }}"}
  - id: shout
    map: ${{ inputs.names }}
    template: ${{ item ~ '！' }}
  - id: ask
    llm: {prompt: "${{ steps.card.output.title }}：${{ steps.brief.output }}"}
outputs:
  first_two: ${{ steps.first_two.output }}
  count: ${{ steps.card.output.count }}
  shouts: ${{ steps.shout.output }}
"""


def test_a_template_step_computes_values_without_a_call(project_dir: Path, server: FakeLLMServer) -> None:
    outcome = run_playbook(write_playbook(project_dir, MERGE))
    assert outcome.status == "done", outcome.error
    assert outcome.outputs == {"first_two": ["物流", "客服"], "count": 3, "shouts": ["物流！", "客服！", "价格！"]}
    (request,) = server.requests  # the llm step's, and no other
    assert request["prompt"] == "小红书周报：渠道：小红书\n- 物流\n- 客服\n\n"


@pytest.mark.parametrize(("reads", "said"), [
    ("steps.card.output.titel", "`steps.card.output` has no field 'titel' (did you mean 'title'?)"),
    ("steps.cards.output", "unknown step 'cards' (did you mean 'card'?)"),
])
def test_a_wrong_read_of_a_template_step_is_refused_at_validate(tmp_path: Path, reads: str, said: str) -> None:
    path = write_playbook(tmp_path, f"""
name: bad
steps:
  - id: card
    template: {{title: 周报, count: 3}}
  - id: ask
    llm: {{prompt: "${{{{ {reads} }}}}"}}
""")
    with pytest.raises(PlaybookValidationError) as caught:
        load_and_validate(path)
    assert said in str(caught.value)


def test_a_template_that_fails_names_the_step_and_field(project_dir: Path) -> None:
    path = write_playbook(project_dir, """
name: broken
inputs: {n: {type: integer, default: 0}}
steps:
  - id: ratio
    template: ${{ 10 / inputs.n }}
""")
    outcome = run_playbook(path)
    assert outcome.status == "failed"
    assert "step 'ratio'" in str(outcome.error) and "template" in str(outcome.error)
    assert "division by zero" in str(outcome.error)
