"""Every symbol the console and the pages show exists in the CJK font the setup installs (no missing-glyph boxes)."""

from __future__ import annotations

import subprocess

import pytest

from tests.conftest import ROOT

SHOWN = [*sorted((ROOT / "runner" / "server" / "templates").glob("*.html")),
         *sorted((ROOT / "runner" / "cli").glob("*.py")), ROOT / "runner" / "evals" / "report.py",
         ROOT / "runner" / "evals" / "report_html.py", *sorted((ROOT / "playbooks").glob("*.yaml"))]


def _is_plain(ch: str) -> bool:
    code = ord(ch)
    return code < 128 or 0x4E00 <= code <= 0x9FFF or 0x3000 <= code <= 0x303F or 0xFF00 <= code <= 0xFFEF


def test_every_symbol_shown_is_in_the_cjk_font() -> None:
    from fontTools.ttLib import TTCollection, TTFont

    found = subprocess.run(["fc-match", "-f", "%{file}", "Noto Sans CJK SC"], capture_output=True, text=True)
    path = found.stdout.strip()
    if "NotoSansCJK" not in path:
        pytest.fail("the CJK font is not installed; run ./scripts/setup")
    assert any(f.parent.name == "cli" and f.name == "progress.py" for f in SHOWN)  # the globs still find the code
    font = TTCollection(path).fonts[0] if path.endswith(".ttc") else TTFont(path)
    cmap = font.getBestCmap()
    missing = {f"{ch} U+{ord(ch):04X} in {file.relative_to(ROOT)}"
               for file in SHOWN for ch in file.read_text(encoding="utf-8")
               if not _is_plain(ch) and ord(ch) not in cmap}
    assert not missing, sorted(missing)
