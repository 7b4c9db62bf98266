"""The import rules of the code base, checked on its source (every import, including those inside functions):

- no module imports another module's underscore name, or reads one off a module it imported;
- `runner`'s subpackages (and its top-level modules) import each other without a cycle, and no two modules
  anywhere do;
- `runner` never imports the built-in `tools` package: those come in through the entry point, like plugins.

The rule checker is tested on small trees written here, so a broken checker cannot pass silently."""

from __future__ import annotations

import ast
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import ROOT

PACKAGES = ("runner", "tools")


def module_names(root: Path) -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def resolve(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[:len(base) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def imports(root: Path) -> tuple[dict[str, set[str]], list[str]]:
    """Every module's imported modules (ours only), and the underscore-name violations."""
    modules = module_names(root)
    edges: dict[str, set[str]] = defaultdict(set)
    violations: list[str] = []
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        bound: dict[str, str] = {}  # local name → our module it is bound to
        for node in ast.walk(tree):
            where = f"{path.relative_to(root)}:{getattr(node, 'lineno', 0)}"
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] in PACKAGES:
                        edges[name].add(alias.name)
                        # `import runner.b as bee` binds bee to runner.b; `import runner.b` binds runner
                        if alias.asname:
                            bound[alias.asname] = alias.name
                        else:
                            bound[alias.name.split(".")[0]] = alias.name.split(".")[0]
            elif isinstance(node, ast.ImportFrom):
                source = resolve(node, name, path.name == "__init__.py")
                if source.split(".")[0] not in PACKAGES:
                    continue
                for alias in node.names:
                    submodule = f"{source}.{alias.name}"
                    target = submodule if submodule in modules else source
                    edges[name].add(target)
                    if target == submodule:
                        bound[alias.asname or alias.name] = submodule
                    if alias.name.startswith("_") and alias.name != "_" and target != name:  # `_`: gettext's
                        violations.append(f"{where}: imports {alias.name} from {source}")
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
                    and isinstance(node.value, ast.Name) and node.value.id in bound
                    and bound[node.value.id] != name):
                violations.append(f"{path.relative_to(root)}:{node.lineno}: reads {node.attr} off "
                                  f"{bound[node.value.id]}")
    return edges, violations


def unit(module: str) -> str:
    """`runner.engine.nodes.map` → `runner.engine`; a top-level module is its own unit; `tools` is one."""
    parts = module.split(".")
    return "tools" if parts[0] == "tools" else ".".join(parts[:2])


def unit_cycle(edges: dict[str, set[str]], unit: Callable[[str], str] = unit) -> list[str] | None:
    """The first import cycle between units (subpackages by default; pass `str` for modules), or None."""
    graph: dict[str, set[str]] = defaultdict(set)
    for source, targets in edges.items():
        for target in targets:
            if unit(source) != unit(target):
                graph[unit(source)].add(unit(target))
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def test_no_module_import_cycle_at_all() -> None:
    edges, _ = imports(ROOT)
    assert unit_cycle(edges, str) is None


def runner_imports_tools(edges: dict[str, set[str]]) -> list[str]:
    return sorted(f"{s} imports {t}" for s, ts in edges.items() for t in ts
                  if s.startswith("runner") and t.split(".")[0] == "tools")


def test_no_module_uses_another_modules_underscore_names() -> None:
    _, violations = imports(ROOT)
    assert violations == []


def test_runner_subpackages_import_each_other_without_a_cycle() -> None:
    edges, _ = imports(ROOT)
    assert unit_cycle(edges) is None


def test_runner_never_imports_the_builtin_tools() -> None:
    edges, _ = imports(ROOT)
    assert runner_imports_tools(edges) == []


def write_tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")
    for package in PACKAGES:
        (root / package).mkdir(exist_ok=True)
        (root / package / "__init__.py").touch()
    return root


@pytest.mark.parametrize("text", [
    "from runner.b import _hidden\n",
    "def f():\n    from .b import _hidden\n",
    "from runner import b\nb._hidden()\n",
    "import runner.b as bee\nbee._hidden\n",
])
def test_the_checker_finds_underscore_imports(tmp_path: Path, text: str) -> None:
    root = write_tree(tmp_path, {"runner/a.py": text, "runner/b.py": "_hidden = 1\n"})
    _, violations = imports(root)
    assert len(violations) == 1 and violations[0].startswith("runner/a.py:")


def test_the_checker_allows_own_and_public_names(tmp_path: Path) -> None:
    root = write_tree(tmp_path, {"runner/a.py": "from runner.b import shown\n_own = 1\nprint(_own)\n",
                                 "runner/b.py": "shown = 1\n"})
    assert imports(root)[1] == []


def test_the_checker_finds_a_cycle_between_subpackages(tmp_path: Path) -> None:
    root = write_tree(tmp_path, {
        "runner/dsl/__init__.py": "", "runner/engine/__init__.py": "",
        "runner/dsl/validate.py": "def f():\n    from runner.engine.execute import run\n",  # a lazy import counts
        "runner/engine/execute.py": "from runner.dsl.validate import f\nrun = 1\n",
        "runner/engine/nodes/__init__.py": "from runner.engine import execute\n",  # inside one unit: fine
    })
    edges, _ = imports(root)
    assert unit_cycle(edges) == ["runner.dsl", "runner.engine", "runner.dsl"]
    (root / "runner/dsl/validate.py").write_text("f = 1\n", encoding="utf-8")
    assert unit_cycle(imports(root)[0]) is None
    assert unit_cycle(edges, str) == ["runner.dsl.validate", "runner.engine.execute", "runner.dsl.validate"]


def test_the_checker_finds_runner_importing_tools(tmp_path: Path) -> None:
    root = write_tree(tmp_path, {"runner/server.py": "def f():\n    from tools.notify import payload\n",
                                 "tools/notify.py": "payload = 1\n"})
    assert runner_imports_tools(imports(root)[0]) == ["runner.server imports tools.notify"]


def test_validate_and_help_load_no_engine_model_or_network_library() -> None:
    """`playbook --help` and `playbook validate` stay light: litellm, langgraph, httpx and the openai SDK (and the
    heavy tool libraries) load only when a run needs them; `--help` imports no tool module at all, and validate
    only the families the playbook uses (tests/test_plugins.py); neither loads the team queue, the store or the
    server (`run.py` imported the queue at load time: 567 modules for --help, 395 without)."""
    import subprocess
    import sys

    heavy = ("litellm", "langgraph", "httpx", "openai", "openpyxl", "sklearn", "jieba", "matplotlib", "lxml",
             "playwright")
    probe = ("import sys\nsys.argv = ['playbook', *sys.argv[1:]]\nfrom runner.cli import main\ntry:\n    main()\n"
             "except SystemExit:\n    pass\n"
             "print(sorted(m for m in sys.modules if m.startswith(('runner.team', 'runner.store', 'runner.server'))),"
             " file=sys.stderr)\n"
             "print(sorted(m for m in sys.modules if m.startswith('tools.')), file=sys.stderr)\n"
             f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({heavy!r})), file=sys.stderr)\n")
    for args in (["--help"], ["validate", "playbooks/feedback_digest.yaml"]):
        done = subprocess.run([sys.executable, "-c", probe, *args], cwd=ROOT, capture_output=True, text=True,
                              timeout=120)
        server_side, tool_modules, libraries = done.stderr.strip().splitlines()[-3:]
        assert libraries == "[]", (args, done.stderr[-500:])
        assert server_side == "[]", (args, server_side)  # the queue, the store, the server: a run's business
        if args == ["--help"]:
            assert tool_modules == "[]", tool_modules


def runner_built_outside_assembly(root: Path) -> list[str]:
    """Places in runner/ and tools/ that call `Runner(...)` other than runner/assembly.py."""
    found = []
    for package in ("runner", "tools"):
        for path in sorted((root / package).rglob("*.py")):
            if path.relative_to(root).as_posix() == "runner/assembly.py":
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if not isinstance(node, ast.Call):
                    continue
                if getattr(node.func, "id", getattr(node.func, "attr", None)) == "Runner":
                    found.append(f"{path.relative_to(root).as_posix()}:{node.lineno}")
    return found


def test_a_run_is_assembled_in_one_place() -> None:
    """CLI, scheduler, web service, worker, chunk runner and evals all build their Runner with assemble(), so a
    run gets the same hooks (chat cards and notices) wherever it runs."""
    assert runner_built_outside_assembly(ROOT) == []


def test_the_checker_finds_a_runner_built_elsewhere(tmp_path: Path) -> None:
    write_tree(tmp_path, {"runner/cli.py": "from runner.engine.execute import Runner\nr = Runner(p)\n",
                          "runner/assembly.py": "r = Runner(p)\n", "tools/x.py": "r = execute.Runner(p)\n"})
    assert runner_built_outside_assembly(tmp_path) == ["runner/cli.py:2", "tools/x.py:1"]


def test_the_public_api_is_typed_for_a_type_checker(tmp_path: Path) -> None:
    """`from runner import Runner` was `Any` to mypy (the names load lazily through `__getattr__`): a script misusing
    the API passed its type check. The TYPE_CHECKING imports in runner/__init__.py give the real types."""
    import subprocess
    import sys

    script = tmp_path / "uses_api.py"
    script.write_text("from runner import Runner, load_project\n\nwrong: int = load_project\n"
                      "runner: Runner = Runner(load_project())\n", encoding="utf-8")
    # in a process of its own: mypy raises the interpreter's recursion limit for good, which made a later
    # test's deliberately recursive template take 44 s instead of half a second
    checked = subprocess.run([sys.executable, "-m", "mypy", str(script), "--strict", "--cache-dir",
                              str(ROOT / ".mypy_cache"), "--config-file", str(ROOT / "pyproject.toml")],
                             cwd=ROOT, capture_output=True, text=True, timeout=600)
    report, status = checked.stdout, checked.returncode
    assert status == 1, report + checked.stderr
    assert 'Incompatible types in assignment (expression has type "Callable[[Path | None], Project]"' in report
    assert report.count("error:") == 1, report  # the right use type-checks
