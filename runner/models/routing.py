"""Which provider sends a model's requests: the first in PROVIDERS that handles its [models.X] entry. A new
provider (runner/models/provider.py Provider) is its module plus one entry here, before any it narrows."""

from __future__ import annotations

from runner.config import ModelConfig
from runner.models.litellm_provider import Litellm
from runner.models.local_model import LocalModel
from runner.models.openai_compatible import OpenAICompatible
from runner.models.provider import Provider

PROVIDERS: list[Provider] = [LocalModel(), OpenAICompatible(), Litellm()]


def provider_for(config: ModelConfig) -> Provider:
    return next(p for p in PROVIDERS if p.handles(config))  # Litellm handles whatever the others do not
