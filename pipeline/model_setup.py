"""What the index job learns about the model before it embeds anything.

``model_setup`` reads ``GET /info`` (a model other than ``--model`` is a ConfigError
here, before any embedding request) and sets up the ``TokenBudget`` that keeps chunks
under the model's input limit: ``--max-input-tokens``, else the limit ``KNOWN_LIMITS``
gives for the model's name, else none until the endpoint refuses an input and states it.
What each request asks for is the plan's (``pipeline.job.plan``).
"""

from __future__ import annotations

from dataclasses import dataclass

from corpusbeam.inference.client import ClientSettings, ModelInfo, read_model_info
from corpusbeam.inference.token_budget import TokenBudget, known_limit
from pipeline.config import IndexJobConfig

__all__ = ["ModelSetup", "model_setup"]


@dataclass(frozen=True, kw_only=True)
class ModelSetup:
    model: str  # the name the manifest records
    info: ModelInfo
    budget: TokenBudget


def model_setup(settings: ClientSettings, cfg: IndexJobConfig) -> ModelSetup:
    info = read_model_info(settings, expected=cfg.model)
    name = cfg.model or info.name or "unknown"
    limit = cfg.max_input_tokens or known_limit(info.name) or known_limit(cfg.model)
    budget = TokenBudget(limit, model=info.name or cfg.model, mode=cfg.token_count)
    return ModelSetup(model=name, info=info, budget=budget)
