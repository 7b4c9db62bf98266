"""OpenTelemetry traces (`[trace] otlp_endpoint`): the real `playbook run` exports its spans over OTLP/HTTP to a
receiver on loopback (runner.testing.OtlpReceiver), one tree per run: run → steps → map batches → LLM calls, and
the tool calls under their step, with the GenAI attributes a trace viewer reads."""

from __future__ import annotations

import os
from pathlib import Path

from runner.testing import FakeLLMServer, OtlpReceiver, ReceivedSpan
from tests.conftest import SECRET, cli, write_playbook

TRACED = """
name: traced
inputs: {reviews: {type: list, default: [好用, 太贵, 一般, 很快, 坏了]}}
steps:
  - id: label
    map: ${{ inputs.reviews }}
    batch: 2
    concurrency: 1
    llm: {prompt: "评论：${{ item }}", output: {sentiment: string}}
  - id: save
    tool: file.write
    with: {path: out.txt, content: "${{ steps.label.output | length }} 条"}
"""


def _children(spans: list[ReceivedSpan], parent: ReceivedSpan) -> list[ReceivedSpan]:
    return sorted((s for s in spans if s.parent_id == parent.span_id), key=lambda s: s.start_ns)


def test_a_run_exports_one_span_tree_run_steps_batches_calls(project_dir: Path, server: FakeLLMServer) -> None:
    with OtlpReceiver() as receiver:
        with (project_dir / "playbook.toml").open("a", encoding="utf-8") as toml:
            toml.write(f'\n[trace]\notlp_endpoint = "{receiver.url}"\nservice_name = "ops-team"\n')
        write_playbook(project_dir, TRACED)
        done = cli("run", "pb.yaml", "--run-id", "t1", cwd=project_dir)
        assert done.returncode == 0, done.stderr
        spans = receiver.wait_for(10)  # flushed before the command exited: all there, or the wait times out
    assert len(spans) == 10, [s.name for s in spans]
    assert {s.trace_id for s in spans} == {spans[0].trace_id} and {s.service for s in spans} == {"ops-team"}
    [run] = [s for s in spans if not s.parent_id]
    assert run.name == "playbook traced" and run.attributes["playbook.run_id"] == "t1"
    assert run.attributes["playbook.status"] == "done" and run.attributes["gen_ai.usage.input_tokens"] > 0
    label, save = _children(spans, run)
    assert (label.name, save.name) == ("step label", "step save")
    assert label.attributes["playbook.step.kind"] == "llm" and label.attributes["playbook.items"] == 5
    batches = _children(spans, label)
    assert [b.name for b in batches] == ["batch label[0]", "batch label[2]", "batch label[4]"]
    assert [b.attributes["playbook.batch.size"] for b in batches] == [2, 2, 1]
    for batch in batches:
        [call] = _children(spans, batch)
        assert call.name == "chat default"
        assert call.attributes["gen_ai.operation.name"] == "chat"
        assert call.attributes["gen_ai.request.model"] == "default"
        assert call.attributes["gen_ai.usage.input_tokens"] > 0 and call.attributes["gen_ai.usage.output_tokens"] > 0
        assert batch.start_ns <= call.start_ns <= call.end_ns <= batch.end_ns
    [tool] = _children(spans, save)
    assert tool.name == "execute_tool file.write" and tool.attributes["gen_ai.tool.name"] == "file.write"
    assert run.start_ns <= label.start_ns and save.end_ns <= run.end_ns
    assert all(SECRET not in str(s.attributes) for s in spans)


def test_a_failed_step_marks_its_span_and_the_runs(project_dir: Path, server: FakeLLMServer) -> None:
    server.faults.sequence = [400]  # refused at once: the step and the run fail
    with OtlpReceiver() as receiver:
        with (project_dir / "playbook.toml").open("a", encoding="utf-8") as toml:
            toml.write(f'\n[trace]\notlp_endpoint = "{receiver.url}"\n')
        write_playbook(project_dir, "name: once\nsteps:\n  - {id: ask, llm: {prompt: 你好}}\n")
        done = cli("run", "pb.yaml", cwd=project_dir)
        assert done.returncode != 0
        spans = receiver.wait_for(2)
    by_name = {s.name: s for s in spans}
    assert by_name["playbook once"].status == "ERROR" and by_name["step ask"].status == "ERROR"
    assert by_name["step ask"].parent_id == by_name["playbook once"].span_id


def test_without_an_endpoint_nothing_is_imported(project_dir: Path, server: FakeLLMServer) -> None:
    """Off by default, and off costs nothing: no hook, no exporter, no export thread (langchain-core imports the
    OpenTelemetry API itself when it is installed; that is not ours)."""
    write_playbook(project_dir, "name: once\nsteps:\n  - {id: ask, llm: {prompt: 你好}}\n")
    script = ("import asyncio, sys\nfrom runner import assemble, load_project, load_and_validate\n"
              "runner = assemble(load_project())\n"
              "outcome = asyncio.run(runner.start(load_and_validate('pb.yaml'), {}))\n"
              "assert outcome.status == 'done', outcome.error\n"
              "import threading\n"
              "print(sorted(m for m in sys.modules if m.startswith('opentelemetry.exporter')),\n"
              "      [t.name for t in threading.enumerate() if 'Span' in t.name or 'Otel' in t.name],\n"
              "      [type(h).__name__ for h in runner.hooks])\n")
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", script], cwd=project_dir, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[] [] []", done.stdout


def test_a_collector_that_is_down_costs_a_line_not_the_run(project_dir: Path, english: None) -> None:
    from runner.testing.servers import free_port

    port = free_port()  # a port nothing listens on
    with (project_dir / "playbook.toml").open("a", encoding="utf-8") as toml:
        toml.write(f'\n[trace]\notlp_endpoint = "http://127.0.0.1:{port}"\n')
    write_playbook(project_dir, "name: once\nsteps:\n  - {id: t, template: hi}\n")
    done = cli("run", "pb.yaml", cwd=project_dir)
    assert done.returncode == 0, done.stderr
    assert f"traces: could not send spans to http://127.0.0.1:{port}" in done.stderr
    assert "Traceback" not in done.stderr and "Transient error" not in done.stderr


def test_an_endpoint_without_the_packages_is_refused_before_the_run(project_dir: Path, english: None) -> None:
    """Without the `trace` extra the run is refused before any step runs, with the command that fixes it."""
    with (project_dir / "playbook.toml").open("a", encoding="utf-8") as toml:
        toml.write('\n[trace]\notlp_endpoint = "http://127.0.0.1:4318"\n')
    write_playbook(project_dir, "name: once\nsteps:\n  - {id: t, template: hi}\n")
    blocker = project_dir / "no_otel"
    (blocker / "opentelemetry" / "exporter").mkdir(parents=True)  # a package without the exporter shadows the real one
    (blocker / "opentelemetry" / "__init__.py").write_text("", encoding="utf-8")
    (blocker / "opentelemetry" / "exporter" / "__init__.py").write_text("raise ImportError('no exporter')\n",
                                                                        encoding="utf-8")
    done = cli("run", "pb.yaml", cwd=project_dir,
               env={"PYTHONPATH": os.pathsep.join(filter(None, [str(blocker), os.environ.get("PYTHONPATH")]))})
    assert done.returncode != 0
    assert "pip install 'playbook-runner[trace]'" in done.stderr and "Traceback" not in done.stderr
    runs = project_dir / ".playbook" / "runs"
    assert not runs.exists() or not any(runs.iterdir())  # refused before a run was started


def test_an_inline_bodys_steps_nest_under_the_batch_that_runs_them(project_dir: Path, server: FakeLLMServer) -> None:
    with OtlpReceiver() as receiver:
        with (project_dir / "playbook.toml").open("a", encoding="utf-8") as toml:
            toml.write(f'\n[trace]\notlp_endpoint = "{receiver.url}"\n')
        write_playbook(project_dir, """
name: bodies
steps:
  - id: each
    map: [甲, 乙]
    concurrency: 2
    steps:
      - {id: ask, llm: {prompt: "写一句关于 ${{ item }} 的话"}}
""")
        done = cli("run", "pb.yaml", cwd=project_dir)
        assert done.returncode == 0, done.stderr
        spans = receiver.wait_for(8)
    [run] = [s for s in spans if not s.parent_id]
    [each] = _children(spans, run)
    batches = _children(spans, each)
    assert sorted(b.name for b in batches) == ["batch each[0]", "batch each[1]"]
    for batch in batches:
        [ask] = _children(spans, batch)
        assert ask.name == "step ask"
        [call] = _children(spans, ask)
        assert call.name == "chat default"
    assert len(spans) == 8


def test_a_call_never_starts_before_the_batch_or_step_it_is_filed_under() -> None:
    """A call's span is written when it ends, set back by its seconds — which events round to the millisecond, so
    a call begun within half a millisecond of its batch came out starting before it (the tree test above caught it
    once under load). Driven here through the hooks with the SDK's in-memory exporter: a call reporting more
    seconds than its batch has been open."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from runner.observe.traces import RunTraces

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    traces = RunTraces(provider)
    traces.on_run_start(run_id="r", playbook="p")
    traces.on_step_start(run_id="r", step="label", kind="llm", visit=1)
    traces.on_map_batch(run_id="r", step="label", phase="start", first=0, size=2)
    traces.on_llm_call(run_id="r", step="label", model="default", seconds=5.0, tokens_in=1, tokens_out=1)
    traces.on_map_batch(run_id="r", step="label", phase="end", status="done")
    traces.on_tool_call(run_id="r", step="label", tool="file.write", seconds=5.0)
    traces.on_step_end(run_id="r", step="label", status="done")
    traces.on_run_end(run_id="r", status="done")
    spans = {span.name: span for span in exporter.get_finished_spans()}
    batch, call, step, tool = spans["batch label[0]"], spans["chat default"], spans["step label"], \
        spans["execute_tool file.write"]
    assert call.parent is not None and call.parent.span_id == batch.context.span_id
    assert batch.start_time == call.start_time <= call.end_time <= batch.end_time
    assert tool.parent is not None and tool.parent.span_id == step.context.span_id
    assert step.start_time == tool.start_time <= tool.end_time <= step.end_time
