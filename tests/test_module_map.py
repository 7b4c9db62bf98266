"""The README's module map lists exactly the packages and modules under runner/ and tools/."""

from __future__ import annotations

from tests.conftest import ROOT

MARK = "<!-- module map:"


def mapped_paths(readme: str) -> list[str]:
    """Paths of the tree in the fenced block after the marker: two spaces of indent per level."""
    block = readme[readme.index(MARK):].split("```text\n", 1)[1].split("```", 1)[0]
    stack: list[str] = []
    paths = []
    for line in block.splitlines():
        if not line.strip():
            continue
        depth = (len(line) - len(line.lstrip(" "))) // 2
        name = line.split()[0]
        stack = [*stack[:depth], name]
        paths.append("".join(stack).rstrip("/"))
    return paths


def tree_paths() -> set[str]:
    found = set()
    for package in ("runner", "tools"):
        found.add(package)
        for path in (ROOT / package).rglob("*.py"):
            relative = path.relative_to(ROOT)
            found.add(relative.as_posix())
            found.update(parent.as_posix() for parent in relative.parents if parent.as_posix() != ".")
    return found


def test_the_readme_module_map_matches_the_tree() -> None:
    listed = mapped_paths((ROOT / "README.md").read_text(encoding="utf-8"))
    assert len(listed) == len(set(listed)), "a path is listed twice"
    assert sorted(set(listed) - tree_paths()) == [], "listed in the README but not in the tree"
    assert sorted(tree_paths() - set(listed)) == [], "in the tree but missing from the README's module map"


def test_the_map_reader_follows_indentation() -> None:
    text = f"{MARK} x -->\n```text\nrunner/\n  a.py   one\n  dsl/   two\n    b.py\n  c.py\n```\n"
    assert mapped_paths(text) == ["runner", "runner/a.py", "runner/dsl", "runner/dsl/b.py", "runner/c.py"]
