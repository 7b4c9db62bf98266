"""What an llm step can send — roles, few-shot turns, history, sampling parameters (numbers or expressions),
stop, images — reaches the server exactly, through the openai SDK path and the litellm path alike; what cannot be
sent is refused at validate."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from runner.dsl.validate import load_and_validate
from runner.errors import PlaybookError, PlaybookValidationError
from runner.testing import FakeLLMServer
from tests.conftest import allow_images, cli, run_playbook, write_playbook

pytestmark = pytest.mark.usefixtures("english")

# the smallest PNG there is: 1×1, one transparent pixel
PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJ"
                       "RU5ErkJggg==")

EVERYTHING = """
name: everything
inputs:
  chat: {type: history, default: [{role: user, content: 上次的问题}, {role: assistant, content: 上次的回答}]}
  warmth: {type: number, default: 0.7}
  photo: {type: file}
steps:
  - id: ask
    llm:
      system: 你是客服
      messages:
        - {role: user, content: 例子：物流慢}
        - {role: assistant, content: 抱歉让您久等}
      history: ${{ inputs.chat }}
      prompt: 这条评论：${{ inputs.warmth }}
      images: ["${{ inputs.photo }}", "https://example.com/a.png"]
      temperature: ${{ inputs.warmth }}
      top_p: 0.9
      presence_penalty: 0.5
      frequency_penalty: -0.5
      seed: 7
      max_tokens: 64
      stop: ["###"]
  - id: alone
    llm: {system: 只用系统消息回答}
outputs: {answer: "${{ steps.ask.output }}"}
"""


def _project(tmp_path: Path, server: FakeLLMServer, model: str, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "playbook.toml").write_text(
        f'[models.default]\nmodel = "{model}"\napi_base = "{server.url}"\nvision = true\n', encoding="utf-8")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.chdir(tmp_path)


# `openai/…` with an api_base goes through the openai SDK; a bare OpenAI model id through litellm (which flattens
# image parts into text for providers it believes take none, such as deepseek: the vision check is the guard)
@pytest.mark.parametrize("model", ["openai/fake", "gpt-4o-mini"])
def test_every_message_role_parameter_and_image_reaches_the_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                   model: str) -> None:
    (tmp_path / "photo.png").write_bytes(PNG)
    with FakeLLMServer() as server:
        _project(tmp_path, server, model, monkeypatch)
        outcome = run_playbook(write_playbook(tmp_path, EVERYTHING), {"photo": "photo.png"})
    assert outcome.status == "done", outcome.error
    first, second = (r["body"] for r in server.requests)
    assert [(m["role"], m["content"] if isinstance(m["content"], str) else "parts") for m in first["messages"]] == [
        ("system", "你是客服"), ("user", "例子：物流慢"), ("assistant", "抱歉让您久等"),
        ("user", "上次的问题"), ("assistant", "上次的回答"), ("user", "parts")]
    text, local, remote = first["messages"][-1]["content"]
    assert text == {"type": "text", "text": "这条评论：0.7"}
    assert local["image_url"]["url"] == "data:image/png;base64," + base64.b64encode(PNG).decode()
    assert remote["image_url"]["url"] == "https://example.com/a.png"
    assert {k: first[k] for k in ("temperature", "top_p", "presence_penalty", "frequency_penalty", "seed",
                                  "max_tokens", "stop")} == {
        "temperature": 0.7, "top_p": 0.9, "presence_penalty": 0.5, "frequency_penalty": -0.5, "seed": 7,
        "max_tokens": 64, "stop": ["###"]}
    assert second["messages"] == [{"role": "system", "content": "只用系统消息回答"}]


def test_a_parameter_expression_out_of_bounds_fails_the_step_naming_the_field(project_dir: Path,
                                                                              server: FakeLLMServer) -> None:
    path = write_playbook(project_dir, """
name: hot
inputs: {heat: {type: number}}
steps:
  - {id: ask, llm: {prompt: 你好, temperature: "${{ inputs.heat }}"}}
""")
    outcome = run_playbook(path, {"heat": 5})
    assert outcome.status == "failed"
    assert "llm.temperature: temperature is from 0 to 2, not 5.0" in str(outcome.error)
    assert server.requests == []  # refused before the call


@pytest.mark.parametrize(("body", "said"), [
    ("{prompt: 你好, temperature: 3}", "temperature is from 0 to 2, not 3"),
    ("{prompt: 你好, seed: 1.5}", "seed is a whole number, not 1.5"),
    ("{prompt: 你好, top_p: 'hot ${{ inputs.x }}'}", "top_p: write the expression alone"),
    ("{prompt: 你好, stop: [a, b, c, d, e]}", "stop takes up to 4 texts"),
    ("{output: string}", "an llm step needs a prompt (or messages, or a system message)"),
    ("{prompt: 你好, messages: [{role: tool, content: x}]}",
     "should be one of 'system', 'user', 'assistant', not the text 'tool'"),
    ("{prompt: 你好, history: '上次说的'}", "history is one expression giving the earlier turns"),
])
def test_a_wrong_llm_field_is_refused_at_validate(tmp_path: Path, body: str, said: str) -> None:
    path = write_playbook(tmp_path, f"name: bad\ninputs: {{x: {{default: 1}}}}\nsteps:\n  - {{id: ask, llm: {body}}}\n")
    with pytest.raises(PlaybookError) as caught:
        load_and_validate(path)
    assert said in str(caught.value)
    assert "pydantic" not in str(caught.value) and "type=" not in str(caught.value)


BATCHED = """
name: batched
inputs: {rows: {type: list, default: [a, b]}}
steps:
  - id: label
    map: ${{ inputs.rows }}
    batch: 10
    llm: %s
"""


@pytest.mark.parametrize(("body", "said"), [
    ("{system: '按 ${{ item }} 回答', prompt: x}", "unknown name 'item'"),
    ("{messages: [{role: user, content: x}]}", "a batched map sends each item's prompt in one call"),
    ("{prompt: x, images: [a.png]}", "images cannot go with `batch`"),
    ("{prompt: x, temperature: '${{ item }}'}", "unknown name 'item'"),
])
def test_a_batched_map_may_vary_only_its_prompt_per_item(tmp_path: Path, body: str, said: str) -> None:
    with pytest.raises(PlaybookValidationError) as caught:
        load_and_validate(write_playbook(tmp_path, BATCHED % body))
    assert said in str(caught.value)


def test_few_shot_turns_go_with_every_batch(project_dir: Path, server: FakeLLMServer) -> None:
    path = write_playbook(project_dir, BATCHED % "{messages: [{role: user, content: 例子}, "
                                                 "{role: assistant, content: 答}], prompt: '${{ item }}', top_p: 0.5}")
    outcome = run_playbook(path)
    assert outcome.status == "done", outcome.error
    (request,) = server.requests
    assert [m["role"] for m in request["messages"]] == ["user", "assistant", "user"]
    assert request["body"]["top_p"] == 0.5


IMAGES = """
name: look
inputs: {photo: {type: file}}
steps:
  - {id: look, llm: {prompt: 图里是什么, images: ["${{ inputs.photo }}"]}}
"""


def test_images_for_a_model_that_takes_none_are_refused_at_validate(project_dir: Path) -> None:
    write_playbook(project_dir, IMAGES)
    done = cli("validate", "pb.yaml", cwd=project_dir)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "step 'look' sends images, but model 'default' (openai/fake) does not take images" in done.stderr
    assert "vision = true" in done.stderr and "Traceback" not in done.stderr


def test_a_file_that_is_not_an_image_fails_before_the_call(project_dir: Path, server: FakeLLMServer) -> None:
    with (project_dir / "playbook.toml").open("a", encoding="utf-8") as toml:
        toml.write("vision = true\n")
    (project_dir / "notes.png").write_text("这不是图片", encoding="utf-8")
    outcome = run_playbook(write_playbook(project_dir, IMAGES), {"photo": "notes.png"})
    assert outcome.status == "failed"
    assert "llm.images: 'notes.png' is not a PNG, JPEG, GIF or WebP image" in str(outcome.error)
    assert server.requests == []


@pytest.mark.parametrize(("given", "said"), [
    ("[{role: user, content: 你好}, {role: bot, content: 嗯}]", "turn 2 is not {role: user or assistant"),
    ("{role: user}", "expected a list of turns"),
])
def test_a_history_input_of_the_wrong_shape_is_refused_before_the_run(project_dir: Path, given: str,
                                                                      said: str) -> None:
    write_playbook(project_dir, """
name: chat
inputs: {chat: {type: history}}
steps:
  - {id: ask, llm: {history: "${{ inputs.chat }}", prompt: 继续}}
""")
    done = cli("run", "pb.yaml", "-i", f"chat={given}", cwd=project_dir)
    assert done.returncode == 2 and said in done.stderr, done.stderr


def test_a_string_input_longer_than_max_length_is_refused(tmp_path: Path) -> None:
    from runner.dsl.inputs import resolve_inputs

    spec = load_and_validate(write_playbook(tmp_path, """
name: short
inputs: {title: {type: string, max_length: 5}}
steps:
  - {id: ask, llm: {prompt: "${{ inputs.title }}"}}
""")).spec
    assert resolve_inputs(spec, {"title": "五个字正好"}, file="x")["title"] == "五个字正好"
    with pytest.raises(PlaybookValidationError, match="6 characters; at most 5 are allowed"):
        resolve_inputs(spec, {"title": "六个字太长了"}, file="x")



def test_the_embedded_models_prompt_keeps_a_lone_system_message() -> None:
    from runner.models.local_model import gemma_prompt

    assert gemma_prompt([{"role": "system", "content": "只用系统消息回答"}]) == (
        "<start_of_turn>user\n只用系统消息回答<end_of_turn>\n<start_of_turn>model\n")
    assert gemma_prompt([{"role": "system", "content": "规则"}, {"role": "user", "content": "问题"}]) == (
        "<start_of_turn>user\n规则\n\n问题<end_of_turn>\n<start_of_turn>model\n")


@pytest.mark.parametrize(("image", "said"), [
    ("big.png", "image 'big.png' is 21.0 MB; models take images up to 20 MB"),
    ("/etc/hostname", "'/etc/hostname' is outside the project folder"),
    ("nowhere.png", "cannot read image 'nowhere.png': No such file or directory"),
])
def test_an_image_that_cannot_be_sent_fails_before_the_call(project_dir: Path, server: FakeLLMServer, image: str,
                                                            said: str) -> None:
    allow_images(project_dir)
    with (project_dir / "big.png").open("wb") as big:
        big.truncate(21 * 2**20)
    path = write_playbook(project_dir, "name: look\ninputs: {photo: {type: string}}\nsteps:\n"
                                       "  - {id: look, llm: {prompt: 看图, images: ['${{ inputs.photo }}']}}\n")
    outcome = run_playbook(path, {"photo": image})
    assert outcome.status == "failed" and said in str(outcome.error), outcome.error
    assert server.requests == []
