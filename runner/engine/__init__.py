"""Phases three and four: compile a checked playbook into a LangGraph graph, and execute it — one module per
step kind under `nodes/`, hooks and events, approval decisions. The executor (`execute.py`) is where a run's
I/O happens; the nodes get what they need through `RunContext`."""
