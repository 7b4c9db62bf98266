"""The chaos benchmark, bounded for CI: one trial of `benchmarks/chaos.py` per test run — a fault of a kind drawn at
random, at a random moment of a distributed map on two workers and a scheduler — held to the benchmark's bar:
finished by itself, never shown failed, nothing lost, no answered call asked again. Over many CI runs it samples
every kind and moment; the seed is in the failure message, so a failure reruns as
`python benchmarks/chaos.py --trials 1 --kinds KIND --seed SEED`. (The full table: benchmarks/README.md.)"""

from __future__ import annotations

import importlib.util
import random
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
QUICK_KINDS = ("worker", "coordinator", "redis", "postgres")  # the long outages (20 s, 90 s, frozen 60 s) stay out


def _chaos() -> Any:
    spec = importlib.util.spec_from_file_location("chaos", ROOT / "benchmarks" / "chaos.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_one_chaos_trial_at_a_random_moment(postgres_server: Any, redis_server: Any) -> None:
    kind, seed = random.SystemRandom().choice(QUICK_KINDS), random.SystemRandom().randrange(10**6)
    result = _chaos().trial(kind, random.Random(seed), postgres_server, redis_server, 0)  # db 0: no test uses it
    rerun = f"python benchmarks/chaos.py --trials 1 --kinds {kind} --seed {seed}"
    assert result["outcome"] == "by itself" and not result["shown_failed"], (rerun, result)
    assert result["again"] == 0, (rerun, result)
