"""JSON Schema of the playbook DSL, generated from the same pydantic models that validate it."""

from __future__ import annotations

from typing import Any

from runner.dsl.spec import PlaybookSpec


def playbook_json_schema() -> dict[str, Any]:
    schema = PlaybookSpec.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "playbook runner playbook (DSL v1)"
    return schema
