"""A study's identity: what determines its results, one digest per part.

A study stores its identity (Optuna user attribute ``identity``) when it is created; resuming it
with a config, data or weights that give other results is refused with the parts that differ
named (``space``, ``objectives``, ``constraints``, ``strategy``, ``seed``, ``fidelity``,
``model``, ``data``, ``weights``). The weights are a digest of the state dict's tensors, so a
checkpoint written again with the same weights (``quantsearch train`` records its timing) still
resumes. Studies written before identities were stored hold one ``fingerprint``; they resume
when it matches and are otherwise refused without the parts named (that version kept none).
"""

from __future__ import annotations

import json
from typing import Any

import optuna

from quantsearch.errors import ConfigError
from quantsearch.search.config import SearchConfig
from quantsearch.search.evaluate import config_hash
from quantsearch.search.space import SearchSpace

__all__ = ["LEGACY", "StudyMadeAnew", "check_identity", "fingerprint", "identity"]


def fingerprint(cfg: SearchConfig, space: SearchSpace, extra: dict[str, Any]) -> str:
    """The one digest quantsearch before study identities stored (still read to resume those
    studies): the config's parts with ``extra``'s model, dataset, checkpoint file and samples."""
    payload = {
        "strategy": [cfg.strategy.name, cfg.strategy.options],
        "knobs": [[k.name, list(k.labels), list(k.nodes)] for k in space.knobs],
        "combine": cfg.combine,
        "objectives": [
            [o.metric, o.direction, o.weight, o.relative_to_baseline] for o in cfg.objectives
        ],
        "constraints": [[c.name, c.kind, c.bound] for c in cfg.constraints],
        "metrics": list(cfg.all_metrics),
        "seed": cfg.seed,
        **extra,
    }
    payload.update(cfg.fidelity.identity())
    return config_hash(json.dumps(payload, sort_keys=True, default=str))


LEGACY = "legacy"  # the key of ``extra`` that holds what the old fingerprint hashed


def identity(cfg: SearchConfig, space: SearchSpace, extra: dict[str, Any]) -> dict[str, str]:
    """What determines a study's results, one digest per part, so a refusal can name the part
    that differs. Trial budget, timeout and n_jobs are not part of it: they may change.

    ``extra`` adds the parts only the caller knows (``model``, ``data``, ``weights``: digests of
    the validation tensors and of the state dict, not of the checkpoint file's bytes).
    """
    parts: dict[str, Any] = {
        "space": [[k.name, list(k.labels), list(k.nodes)] for k in space.knobs],
        "objectives": [
            cfg.combine,
            [[o.metric, o.direction, o.weight, o.relative_to_baseline] for o in cfg.objectives],
            list(cfg.all_metrics),
        ],
        "constraints": [[c.name, c.kind, c.bound] for c in cfg.constraints],
        "strategy": [cfg.strategy.name, cfg.strategy.options],
        "seed": cfg.seed,
        **cfg.fidelity.identity(),
        **{k: v for k, v in extra.items() if k != LEGACY},
    }
    return {k: config_hash(json.dumps(v, sort_keys=True, default=str)) for k, v in parts.items()}


class StudyMadeAnew(UserWarning):
    """A study that holds no trial was made for another config: it takes this one's."""


def check_identity(
    study: optuna.Study,
    study_name: str,
    cfg: SearchConfig,
    space: SearchSpace,
    extra: dict[str, Any],
) -> dict[str, str] | None:
    """Refuse a study made for other results, naming what differs; the identity to store when
    the study has none yet (new, or written by a quantsearch that stored one fingerprint)."""
    ours = identity(cfg, space, extra)
    stored = study.user_attrs.get("identity")
    hint = "allowed: the config it was made with; pass --study NAME to start a new one"
    if isinstance(stored, dict):
        differ = sorted(k for k in ours.keys() | stored.keys() if ours.get(k) != stored.get(k))
        if differ:
            raise ConfigError(
                f"--study: got {study_name!r}, a study in this storage made with different "
                f"{', '.join(differ)}, {hint}"
            )
        return None
    old = study.user_attrs.get("fingerprint")
    if old is not None and old != fingerprint(cfg, space, extra.get(LEGACY, {})):
        raise ConfigError(
            f"--study: got {study_name!r}, a study in this storage made by an earlier quantsearch "
            f"with a different config or checkpoint file (space, objectives, constraints, "
            f"strategy, seed, data or model; that version did not record which), {hint}"
        )
    return ours
