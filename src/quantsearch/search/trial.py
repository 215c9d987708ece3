"""One trial as quantsearch keeps it: a frozen record, written once and read everywhere.

The study loop writes a trial's bookkeeping with :meth:`TrialInfo.to_user_attrs`; every reader
(results, compare, report, the strategies, the workers' budget) builds a :class:`TrialInfo` with
:meth:`TrialInfo.from_trial` and asks it the rules: :attr:`counts_toward_budget`,
:attr:`is_visited`, :attr:`is_feasible`, :attr:`evaluated`. No other module reads the raw user
attributes, so the rules exist once.

Storage layout, per trial (Optuna user attributes):
    ``"qs"``              the bookkeeping: config hash, cache hit, the trial it repeats, the
                          error, evaluation seconds, constraint values, feasibility, and (for a
                          distinct evaluation) the resolved per-node config;
    ``"metrics"``         every measured metric, as one dict (what run directories and resumed
                          studies read);
    ``"<metric>"``        each metric again as its own number, so ``Study.trials_dataframe()``
                          and optuna-dashboard show one column per metric;
    ``"format.<node>.<role>"``  for a choice with ``frac_width = "auto"``, the format the node
                          got (``fixed(8,5)``), on every trial, a cache hit's too.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Protocol

from quantsearch.trial_attrs import FORMAT_ATTR, INFO_ATTR, METRICS_ATTR, RESERVED_ATTRS

__all__ = [
    "FORMAT_ATTR",
    "INFO_ATTR",
    "METRICS_ATTR",
    "RESERVED_ATTRS",
    "TrialInfo",
    "evaluations_charged",
]


_RUNNING_STATES = ("RUNNING", "WAITING")


class _OptunaTrial(Protocol):
    """What :meth:`TrialInfo.from_trial` reads of an Optuna ``FrozenTrial``."""

    @property
    def number(self) -> int: ...
    @property
    def params(self) -> dict[str, Any]: ...
    @property
    def values(self) -> list[float] | None: ...
    @property
    def user_attrs(self) -> dict[str, Any]: ...
    @property
    def state(self) -> Any: ...


@dataclass(frozen=True)
class TrialInfo:
    """One trial of a study, as quantsearch recorded it.

    Attributes:
        number: Optuna's trial number.
        state: Optuna's state name: ``COMPLETE``, ``FAIL``, ``RUNNING``, ``WAITING``, ``PRUNED``.
        params: the sampled knob values, by knob name.
        values: the objective values (``None`` unless COMPLETE; a failed config's are the
            worst seen, see :mod:`quantsearch.search.failed`).
        metrics: every measured metric.
        feasible: all constraints met (``None`` before measurement, or with no metrics).
        cached: the result came from the evaluation cache (a repeat), not a new evaluation.
        config_hash: the canonical hash of the resolved per-node config.
        duplicate_of: for a cached trial, the trial that evaluated the config.
        error: why the config itself failed (``None`` unless it did).
        eval_seconds: evaluation wall time (0 for a cache hit).
        config: the resolved per-node config, stored on distinct evaluations only.
        constraints: the constraint values (``<= 0`` is satisfied), in config order.
        prechecked: judged infeasible before evaluation, from constraints on analytic cost
            metrics alone (:mod:`quantsearch.search.precheck`): no forward pass was run, and
            ``metrics`` holds only those cost metrics.
        samples: validation samples this trial's forward passes used (0 for a cache hit or a
            pre-checked trial; ``None`` in records older than this field).
        pruned_by: for a PRUNED trial, the rule that stopped it (a constraint's name, or
            ``"incumbent"``); see :mod:`quantsearch.search.fidelity`.
        formats: ``"<node>.<role>"`` -> the format (its ``str()``) of each role whose chosen
            format left a field to calibration (``frac_width = "auto"``): what it became.

    Example:
        >>> t = TrialInfo(number=3, state="COMPLETE", values=(0.9,), metrics={"accuracy": 0.9},
        ...               feasible=True, config_hash="ab12")
        >>> t.counts_toward_budget, t.is_feasible, t.evaluated
        (True, True, True)
        >>> TrialInfo(number=4, state="FAIL").counts_toward_budget  # killed worker: retried
        False
        >>> failed = TrialInfo(number=5, state="COMPLETE", values=(-1.0,), error="NaN accuracy")
        >>> failed.config_failed, failed.counts_toward_budget, failed.is_feasible
        (True, True, False)
    """

    number: int
    state: str
    params: dict[str, Any] = field(default_factory=dict)
    values: tuple[float, ...] | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    feasible: bool | None = None
    cached: bool = False
    config_hash: str | None = None
    duplicate_of: int | None = None
    error: str | None = None
    eval_seconds: float | None = None
    config: dict[str, Any] | None = None
    constraints: tuple[float, ...] | None = None
    prechecked: bool = False
    samples: int | None = None
    pruned_by: str | None = None
    formats: dict[str, str] = field(default_factory=dict)

    # -- the rules --------------------------------------------------------------------------

    @property
    def config_failed(self) -> bool:
        """The config itself failed (an error the objective recorded), as opposed to a trial
        failed because its worker died, which is retried. Recorded COMPLETE with its error and
        the worst values (:mod:`quantsearch.search.failed`); FAIL with an error in older
        studies."""
        return self.state in ("COMPLETE", "FAIL") and self.error is not None

    @property
    def measured(self) -> bool:
        """Completed with its metrics measured (or pre-checked): not a failed config."""
        return self.state == "COMPLETE" and not self.config_failed

    @property
    def counts_toward_budget(self) -> bool:
        """Uses up one trial of ``n_trials``: completed trials, failed configs and trials
        pruned by the multi-fidelity rule (they spent validation samples)."""
        return self.state in ("COMPLETE", "PRUNED") or self.config_failed

    @property
    def is_visited(self) -> bool:
        """Its point is taken: finished, failed by its own config, or still in flight."""
        return self.counts_toward_budget or self.state in _RUNNING_STATES

    @property
    def is_feasible(self) -> bool:
        """Completed with every constraint met (a trial without constraints is feasible); a
        failed config never is."""
        return self.measured and self.feasible is not False

    @property
    def evaluated(self) -> bool:
        """This trial ran the model (a distinct evaluation), successfully or not: a charged
        trial the cache did not answer."""
        return self.charges_evaluation and not self.cached

    @property
    def charges_evaluation(self) -> bool:
        """Its config counts toward ``n_evaluations`` (once per distinct config): a finished
        trial that asked for an evaluation, answered by a cache or not. Pre-checked trials
        never do; a pruned trial does (at the samples it used)."""
        return self.config_hash is not None and not self.prechecked and self.counts_toward_budget

    # -- storage ----------------------------------------------------------------------------

    def to_user_attrs(self) -> dict[str, Any]:
        """The user attributes the study loop stores for this trial (see the module doc)."""
        info: dict[str, Any] = {
            "config_hash": self.config_hash,
            "cached": self.cached,
            "eval_seconds": self.eval_seconds,
        }
        if self.duplicate_of is not None:
            info["duplicate_of"] = self.duplicate_of
        if self.config is not None:
            info["config"] = self.config
        if self.error is not None:
            info["error"] = self.error
        if self.constraints is not None:
            info["constraints"] = list(self.constraints)
        if self.feasible is not None:
            info["feasible"] = self.feasible
        if self.prechecked:
            info["prechecked"] = True
        if self.samples is not None:
            info["samples"] = self.samples
        if self.pruned_by is not None:
            info["pruned_by"] = self.pruned_by
        attrs: dict[str, Any] = {INFO_ATTR: info}
        attrs.update({FORMAT_ATTR + k: v for k, v in self.formats.items()})
        if self.error is None and self.metrics:
            attrs[METRICS_ATTR] = dict(self.metrics)
            attrs.update({k: v for k, v in self.metrics.items() if _is_number(v)})
        return attrs

    @classmethod
    def from_trial(cls, t: _OptunaTrial) -> TrialInfo:
        """Read an Optuna ``FrozenTrial`` (of any quantsearch version's layout)."""
        ua = t.user_attrs
        info: Mapping[str, Any] = ua.get(INFO_ATTR, {})
        cons = info.get("constraints")
        return cls(
            number=t.number,
            state=t.state.name,
            params=dict(t.params),
            values=tuple(t.values) if t.values is not None else None,
            metrics=dict(ua.get(METRICS_ATTR, {})),
            feasible=info.get("feasible"),
            cached=bool(info.get("cached", False)),
            config_hash=info.get("config_hash"),
            duplicate_of=info.get("duplicate_of"),
            error=info.get("error"),
            eval_seconds=info.get("eval_seconds"),
            config=info.get("config"),
            constraints=tuple(cons) if cons is not None else None,
            prechecked=bool(info.get("prechecked", False)),
            samples=info.get("samples"),
            pruned_by=info.get("pruned_by"),
            formats={k[len(FORMAT_ATTR) :]: v for k, v in ua.items() if k.startswith(FORMAT_ATTR)},
        )

    def to_dict(self) -> dict[str, Any]:
        """The record as one line of ``trials.jsonl`` holds it, field by field, not copied
        (``dataclasses.asdict`` deep-copies the per-node config: half a second at the end of a
        1,000-trial search); :meth:`from_dict` reads it back.

        Example:
            >>> import json
            >>> t = TrialInfo(number=1, state="COMPLETE", values=(0.5,), config={"fc": {}})
            >>> TrialInfo.from_dict(json.loads(json.dumps(t.to_dict()))) == t
            True
            >>> t.to_dict()["config"] is t.config
            True
        """
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TrialInfo:
        """Read one line of ``trials.jsonl`` (unknown keys ignored: newer writers add some).

        Raises:
            ValueError: ``d`` is not a trial record (wrong types where numbers, a state,
                lists or tables belong).
        """
        if not isinstance(d, Mapping):
            raise ValueError(f"a trial record is a JSON object (got {type(d).__name__})")
        known = {f.name for f in fields(cls)}
        kw = {k: v for k, v in d.items() if k in known}
        if isinstance(kw.get("number"), bool) or not isinstance(kw.get("number"), int):
            raise ValueError(f"'number' must be an integer (got {kw.get('number')!r})")
        if kw.get("state") not in _STATES:
            raise ValueError(f"'state' must be one of {sorted(_STATES)} (got {kw.get('state')!r})")
        for k in ("params", "metrics", "formats"):
            if not isinstance(kw.get(k, {}), Mapping):
                raise ValueError(f"{k!r} must be an object (got {kw[k]!r})")
        for k in ("values", "constraints"):
            v = kw.get(k)
            if v is None:
                continue
            if not isinstance(v, list) or not all(
                isinstance(x, (int, float)) and not isinstance(x, bool) for x in v
            ):
                raise ValueError(f"{k!r} must be a list of numbers (got {v!r})")
            if k == "values" and not v:  # one per objective: the report indexed past it
                raise ValueError("'values' must hold one number per objective (got [])")
            kw[k] = tuple(v)
        # the report hashes, sums and walks these: a wrong type there was a traceback
        for k, kind, what in _OPTIONAL:
            v = kw.get(k)
            flag = isinstance(v, bool)  # an int to isinstance: true where a count belongs
            if v is not None and (not isinstance(v, kind) or flag != (kind is bool)):
                raise ValueError(f"{k!r} must be {what} or null (got {v!r})")
        return cls(**kw)

    def row(self) -> dict[str, Any]:
        """One row of ``trials.csv``."""
        out: dict[str, Any] = {
            "number": self.number,
            "state": self.state,
            "feasible": self.feasible,
            "cached": self.cached,
            "duplicate_of": self.duplicate_of,
            "config_hash": self.config_hash,
        }
        if self.values is not None:
            for i, v in enumerate(self.values):
                out["objective" if len(self.values) == 1 else f"objective_{i}"] = v
        out.update({f"params.{k}": v for k, v in self.params.items()})
        out.update({f"formats.{k}": v for k, v in self.formats.items()})
        out.update({f"metrics.{k}": v for k, v in self.metrics.items()})
        out["eval_seconds"] = self.eval_seconds
        out["samples"] = self.samples
        out["prechecked"] = self.prechecked
        out["error"] = self.error
        return out


def evaluations_charged(trials: Iterable[TrialInfo], *, distinct: bool = True) -> int:
    """Evaluations a study's ``trials`` used up of ``n_evaluations``: distinct configs among the
    trials that charge one (``distinct=False``, with the cache off: every such trial).

    Example:
        >>> t = [TrialInfo(0, "COMPLETE", config_hash="a"),
        ...      TrialInfo(1, "COMPLETE", config_hash="a", cached=True),
        ...      TrialInfo(2, "COMPLETE", config_hash="b", prechecked=True, feasible=False)]
        >>> evaluations_charged(t), evaluations_charged(t, distinct=False)
        (1, 2)
    """
    charged = [t.config_hash for t in trials if t.charges_evaluation]
    return len(set(charged)) if distinct else len(charged)


_STATES = {"COMPLETE", "FAIL", "RUNNING", "WAITING", "PRUNED"}
_OPTIONAL: tuple[tuple[str, type | tuple[type, ...], str], ...] = (
    ("config_hash", str, "a string"),
    ("error", str, "a string"),
    ("pruned_by", str, "a string"),
    ("config", Mapping, "an object"),
    ("samples", int, "an integer"),
    ("duplicate_of", int, "an integer"),
    ("eval_seconds", (int, float), "a number"),
    ("feasible", bool, "true or false"),
    ("cached", bool, "true or false"),
    ("prechecked", bool, "true or false"),
)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and not math.isnan(v)
