"""The `llm` step's spec: its messages and the model parameters — a number, or a `${{ }}` expression computed when
the step runs (a playbook input, an earlier step's output)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema, model_validator

from runner.i18n import _

_EXPRESSION = re.compile(r"^\s*\$\{\{.*\}\}\s*$", re.S)
# name → (lowest, highest, whole numbers only): what OpenAI's chat API accepts, which the others follow
PARAMETER_BOUNDS: dict[str, tuple[float | None, float | None, bool]] = {
    "temperature": (0, 2, False), "top_p": (0, 1, False), "presence_penalty": (-2, 2, False),
    "frequency_penalty": (-2, 2, False), "max_tokens": (1, None, True), "seed": (None, None, True)}
MAX_STOP = 4


def parameter_value(name: str, value: Any) -> float | int:
    """A parameter's number within its bounds, or ValueError saying the range."""
    low, high, whole = PARAMETER_BOUNDS[name]
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise ValueError(_("{name} is a number, not {value!r}").format(name=name, value=value)) from None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(_("{name} is a number, not {value!r}").format(name=name, value=value))
    if whole and value != int(value):
        raise ValueError(_("{name} is a whole number, not {value}").format(name=name, value=value))
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = _("from {low} to {high}").format(low=low, high=high) if low is not None and high is not None \
            else _("at least {low}").format(low=low)
        raise ValueError(_("{name} is {bounds}, not {value}").format(name=name, bounds=bounds, value=value))
    return int(value) if whole else float(value)


def _parameter(name: str) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        if value is None or (isinstance(value, str) and _EXPRESSION.match(value)):
            return value  # an expression: its value is checked when the step runs
        if isinstance(value, str) and "${{" in value:
            raise ValueError(_("{name}: write the expression alone, like `${{{{ inputs.{name} }}}}`").format(
                                 name=name))
        return parameter_value(name, value)
    return check


def _schema(name: str, description: str) -> dict[str, Any]:
    low, high, whole = PARAMETER_BOUNDS[name]
    number: dict[str, Any] = {"type": "integer" if whole else "number"}
    number |= {k: v for k, v in (("minimum", low), ("maximum", high)) if v is not None}
    return {"anyOf": [number, {"type": "string", "pattern": r"^\s*\$\{\{.*\}\}\s*$"}, {"type": "null"}],
            "description": f"{description}; a number or a `${{{{ }}}}` expression"}


Parameter = float | int | str | None
Temperature = Annotated[Parameter, BeforeValidator(_parameter("temperature")),
                        WithJsonSchema(_schema("temperature", "sampling temperature, 0–2"))]
TopP = Annotated[Parameter, BeforeValidator(_parameter("top_p")), WithJsonSchema(_schema("top_p", "nucleus "
                                                                                         "sampling, 0–1"))]
PresencePenalty = Annotated[Parameter, BeforeValidator(_parameter("presence_penalty")),
                            WithJsonSchema(_schema("presence_penalty", "-2–2"))]
FrequencyPenalty = Annotated[Parameter, BeforeValidator(_parameter("frequency_penalty")),
                             WithJsonSchema(_schema("frequency_penalty", "-2–2"))]
MaxTokens = Annotated[Parameter, BeforeValidator(_parameter("max_tokens")),
                      WithJsonSchema(_schema("max_tokens", "most tokens the reply may have"))]
Seed = Annotated[Parameter, BeforeValidator(_parameter("seed")),
                 WithJsonSchema(_schema("seed", "for providers that sample reproducibly"))]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Message(_Model):
    role: Literal["system", "user", "assistant"] = Field(description="who says it: system, user or assistant (an "
                                                                     "example answer, for few-shot prompts)")
    content: str = Field(description="the message (template)")


class LlmSpec(_Model):
    system: str | None = Field(None, description="system message (template)")
    messages: list[Message] | None = Field(None, min_length=1, description=(
        "messages after the system message, before `prompt`: few-shot examples as user/assistant turns"))
    history: str | None = Field(None, description=(
        "an expression giving earlier turns ([{role, content}], e.g. a `history` input), sent after `messages` "
        "and before `prompt`"))
    prompt: str | None = Field(None, description="user message (template); `${{ }}` expressions allowed")
    images: str | list[str] | None = Field(None, description=(
        "images sent with the last user message: file paths or http(s) URLs (templates), or one expression "
        "giving a list; the model must be vision-capable (`vision = true` in its [models.*] section)"))
    output: dict[str, Any] | list[Any] | str | None = Field(
        None, description="compact schema ({field: type}, {enum: [...]}, [type]) or full JSON Schema")
    temperature: Temperature = None
    max_tokens: MaxTokens = None
    top_p: TopP = None
    presence_penalty: PresencePenalty = None
    frequency_penalty: FrequencyPenalty = None
    seed: Seed = None
    stop: str | list[str] | None = Field(None, description=f"text that ends the reply (up to {MAX_STOP})")

    @model_validator(mode="after")
    def _something_to_send(self) -> LlmSpec:
        if self.prompt is None and self.messages is None and self.system is None and self.history is None:
            raise ValueError(_("an llm step needs a prompt (or messages, or a system message) to send"))
        if isinstance(self.stop, list) and len(self.stop) > MAX_STOP:
            raise ValueError(_("stop takes up to {count} texts").format(count=MAX_STOP))
        return self

    @property
    def sampling(self) -> dict[str, Any]:
        """The parameters written on the step, as written (numbers or expressions), unset ones left out."""
        return {name: value for name in PARAMETER_BOUNDS if (value := getattr(self, name)) is not None}
