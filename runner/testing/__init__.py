"""Test doubles users import to test their own playbooks and tools: a fake OpenAI-compatible server
(`FakeLLMServer`, scripted replies and faults), a directory served on loopback, a direct tool call, and an OTLP
trace receiver (`OtlpReceiver`) to check the spans a run exports.

The pytest fixtures and the eval-suite collection are the pytest plugin, `runner/pytest_plugin.py`;
this package imports nothing from the evals (they depend on it, never the reverse).
"""

from runner.testing.directory import serve_directory
from runner.testing.fake_llm import FakeLLMServer, Faults, Reply, Rule, instance_of, load_script
from runner.testing.otlp import OtlpReceiver, ReceivedSpan
from runner.testing.tool_call import call_tool

__all__ = ["FakeLLMServer", "Faults", "OtlpReceiver", "ReceivedSpan", "Reply", "Rule", "call_tool", "instance_of",
           "load_script", "serve_directory"]
