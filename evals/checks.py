"""Custom assertions the shipped suites use (`python: checks:<function>`): each takes the value the
assertion's path names and the case, and returns a bool or (bool, reason)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def labels_cover_deduped(steps: dict[str, Any], case: Any) -> tuple[bool, str]:
    """Every comment left after dedupe got exactly one label."""
    deduped = steps["dedupe"]["count"]
    labelled = steps["label"]["items"]
    ids = [item.get("id") for item in labelled]
    ok = len(labelled) == deduped and len(set(map(str, ids))) == deduped
    return ok, f"{len(labelled)} labels for {deduped} deduped comments ({len(set(map(str, ids)))} distinct ids)"


def report_has_sections(path: str, case: Any) -> tuple[bool, str]:
    """The markdown report exists and has every section the case lists in `vars.sections`."""
    text = Path(path).read_text(encoding="utf-8")
    missing = [s for s in case.vars.get("sections", []) if s not in text]
    return not missing, f"missing sections: {', '.join(missing)}" if missing else "all sections present"


def new_and_gone_disjoint(outputs: dict[str, Any], case: Any) -> tuple[bool, str]:
    """No topic is reported both as new and as gone."""
    both = sorted(set(outputs["new"]) & set(outputs["gone"]))
    return not both, f"both new and gone: {', '.join(both[:5])}" if both else "disjoint"
