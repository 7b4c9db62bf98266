"""What litellm's model table says about a model — USD per token, structured-output support — read from
the file litellm itself loads with LITELLM_LOCAL_MODEL_COST_MAP, without importing litellm (seconds of CPU).
The one source of prices for every call path, looked up once per model."""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class ModelFacts:
    input_cost_per_token: float = 0.0  # USD
    output_cost_per_token: float = 0.0
    supports_response_schema: bool = False
    supports_vision: bool = False


@lru_cache(maxsize=1)
def load() -> dict[str, Any]:
    """The whole table (read once; {} when litellm is not installed)."""
    spec = importlib.util.find_spec("litellm")  # finds the package without importing it
    folders = list(spec.submodule_search_locations or []) if spec else []
    for folder in folders:
        path = Path(folder) / "model_prices_and_context_window_backup.json"
        if path.exists():
            table: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
            return table
    return {}


@lru_cache(maxsize=256)
def facts(model: str) -> ModelFacts:
    """The table's entry for a litellm model id (`deepseek/deepseek-chat`, `openai/gpt-4o`), tried as written
    and without its provider prefix; nothing for a model it does not know (a self-hosted one)."""
    table = load()
    entry = table.get(model) or table.get(model.split("/", 1)[-1]) or {}
    return ModelFacts(float(entry.get("input_cost_per_token") or 0.0),
                      float(entry.get("output_cost_per_token") or 0.0),
                      bool(entry.get("supports_response_schema")), bool(entry.get("supports_vision")))
