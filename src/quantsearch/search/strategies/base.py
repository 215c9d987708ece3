"""What every strategy is built from: the registry entry, its context, and our samplers' base.

A strategy is a :class:`Strategy` (a name, a builder and what the rest of the package needs to
know about it) in :data:`STRATEGIES`. Each builder receives a :class:`StrategyContext` and
returns an ``optuna.samplers.BaseSampler``; options from ``[search.strategy.options]``, checked
against the strategy's schema (:attr:`Strategy.options`), pass straight through to the
sampler's constructor (:func:`pass_options`).

This module does not import :mod:`quantsearch.search.space`: the search config checks strategy
names against this registry, and the space is built from that config, so strategies read a
space through the :class:`Space` protocol (``SearchSpace`` is its one implementation).
"""

from __future__ import annotations

import abc
import itertools
import threading
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypeVar

from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler, RandomSampler
from optuna.study import Study
from optuna.trial import FrozenTrial

from quantsearch.errors import ConfigError
from quantsearch.registry import Registry
from quantsearch.search.strategies.options import Option, check_options

__all__ = [
    "STRATEGIES",
    "Encoding",
    "PicklesWithoutLock",
    "Space",
    "SpaceSampler",
    "Strategy",
    "StrategyContext",
    "build_sampler",
    "pass_options",
]

# How a sampler sees a knob: its choices' labels, or their indices from cheapest to dearest.
Encoding = Literal["categorical", "ordinal"]


class Knob(Protocol):
    """One searched choice, as strategies read it."""

    @property
    def name(self) -> str: ...
    @property
    def size(self) -> int: ...
    @property
    def labels(self) -> tuple[str, ...]: ...
    @property
    def bits(self) -> tuple[float, ...]: ...  # storage bits per element of each option
    @property
    def by_cost(self) -> tuple[int, ...]: ...  # option indices from cheapest to dearest


class Space(Protocol):
    """A finite space, as strategies read it (``quantsearch.search.space.SearchSpace``)."""

    @property
    def knobs(self) -> Sequence[Knob]: ...
    @property
    def size(self) -> int: ...
    @property
    def has_auto(self) -> bool: ...
    def point(self, index: int) -> dict[str, int]: ...
    def layer_formats(self, choice: Mapping[str, int]) -> dict[str, Any]: ...
    def index_of(self, choice: Mapping[str, int]) -> int: ...
    def enumerate(self) -> Iterator[dict[str, int]]: ...
    def distributions(self, encoding: Encoding = ...) -> dict[str, Any]: ...
    def encode(self, choice: Mapping[str, int], encoding: Encoding = ...) -> dict[str, Any]: ...
    def decode(self, params: Mapping[str, Any]) -> dict[str, int]: ...


@dataclass(frozen=True)
class StrategyContext:
    space: Space
    seed: int
    n_objectives: int = 1
    options: dict[str, Any] = field(default_factory=dict)
    # Atomically claims a point index across workers (brute force); None: this process only.
    claim_point: Callable[[int, int], bool] | None = None  # (point index, trial number)
    # The study's budget (n_trials, or n_evaluations when smaller), for samplers whose
    # defaults assume a larger one (NSGA's population); None: unknown.
    n_trials: int | None = None
    # For model-based samplers (sensitivity): the study's evaluator (model, data, calibration)
    # and its SearchConfig (objectives, constraints). Typed Any: search.config imports this
    # module, and the evaluator's type would pull torch into `--help`.
    evaluator: Any = None
    search: Any = None


@dataclass(frozen=True)
class Strategy:
    """A registered strategy and what the study loop, comparisons and reports need to know.

    Attributes:
        name: the stable snake_case name.
        build: makes the sampler for one study.
        description: one line for listings.
        aliases: other accepted spellings (``brute-force``).
        encoding: how the sampler sees each knob (labels, or cheapest-first indices).
        exhaustive: visits every point once, in order, then stops; needs a finite space.
        multi_objective: can optimise a Pareto front (``combine = "pareto"``).
        options: what ``[search.strategy] options`` may set, checked at config load.
        check: checks of the options together, given the study's number of objectives
            (``(options, n_objectives, key)``), at config load too.
    """

    name: str
    build: Callable[[StrategyContext], BaseSampler]
    description: str
    aliases: tuple[str, ...] = ()
    encoding: Encoding = "categorical"
    exhaustive: bool = False
    multi_objective: bool = True
    options: Mapping[str, Option] = field(default_factory=dict)
    check: Callable[[Mapping[str, Any], int, str], None] | None = None

    def check_options(self, options: Mapping[str, Any], key: str, n_objectives: int = 1) -> None:
        """Refuse options this strategy does not take or values outside their range."""
        check_options(options, self.options, key)
        if self.check is not None:
            self.check(options, n_objectives, key)


STRATEGIES: Registry[Strategy] = Registry("search.strategy")


def build_sampler(name: str, ctx: StrategyContext) -> BaseSampler:
    strategy = STRATEGIES.get(name, key="search.strategy")
    # checked at config load too; again here for a SearchConfig built in code
    strategy.check_options(ctx.options, "search.strategy.options", ctx.n_objectives)
    return strategy.build(ctx)


SamplerT = TypeVar("SamplerT", bound=BaseSampler)


def pass_options(cls: type[SamplerT], ctx: StrategyContext, fixed: dict[str, Any]) -> SamplerT:
    """``cls(**fixed, **ctx.options)``. The options were checked against the strategy's schema
    (:class:`Option`) when the config loaded and again in :func:`build_sampler`; the schema
    test (``tests/search/test_strategy_options.py``) checks each schema against ``cls``'s
    own parameters, so a name or type the sampler would refuse never reaches it."""
    # A sampler's own warnings (QMCSampler's "experimental") are shown only once it is built:
    # options it rejects end in one error line, not a warning and then the error.
    with warnings.catch_warnings(record=True) as caught:
        try:
            sampler = cls(**fixed, **ctx.options)
        except (TypeError, ValueError) as exc:
            raise ConfigError(
                f"search.strategy.options: {cls.__name__} rejected them: {exc}"
            ) from None
    for w in caught:
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return sampler


def config_aliases(
    space: Space, resolve: Callable[[Any], Any] | None
) -> list[tuple[int, ...]] | None:
    """Per knob, per choice: the first choice of that knob that resolves to the same per-node
    config (``[8, "auto"]`` calibrated to the ``[8, 5]`` listed beside it); ``None`` when every
    choice is its own, or without ``resolve`` (the evaluator's). Knobs set disjoint (node,
    role) pairs, so two points are one config exactly when their choices alias knob by knob
    (as :meth:`~quantsearch.search.space.SearchSpace.n_configs` counts them).

    Example:
        >>> config_aliases(None, None) is None  # no resolver: every choice is its own
        True
    """
    if resolve is None or not space.has_auto:
        return None
    ref = space.point(0)
    out = []
    for knob in space.knobs:
        first: dict[Any, int] = {}
        out.append(
            tuple(
                first.setdefault(resolve(space.layer_formats({**ref, knob.name: i})).key(), i)
                for i in range(knob.size)
            )
        )
    return None if all(a == tuple(range(len(a))) for a in out) else out


class PicklesWithoutLock:
    """A sampler holding ``self._lock``: a lock does not pickle (Optuna deep-copies samplers,
    a study is pickled to be saved), so a copy gets a new one."""

    _lock: Any

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()


class SpaceSampler(PicklesWithoutLock, BaseSampler):
    """Base of quantsearch's own samplers: each trial gets a whole point of a space.

    Subclasses implement :meth:`propose`. A trial that brings its own parameters (an enqueued
    retry of a dead worker's trial) is left to them; a parameter outside the space (a user
    objective's own suggestion) is drawn at random.

    Args:
        space: the finite space.
        seed: seeds the random fallback (and, in subclasses, their own choices).
        resolve: the evaluator's resolver, to tell points that are one config apart
            (:func:`config_aliases`); subclasses propose one point per config.
    """

    encoding: Encoding = "categorical"

    def __init__(
        self, space: Space, seed: int | None = None, resolve: Callable[[Any], Any] | None = None
    ) -> None:
        self._space = space
        self._fallback = RandomSampler(seed=seed)
        self._aliases = config_aliases(space, resolve)
        self._joint_memo: dict[tuple[int, ...], list[bool]] = {}
        # What this process proposed to each trial: a trial stores its parameters only as its
        # objective suggests them, so n_jobs threads proposing at once saw each other's new
        # trials without a point, and proposed it again (local search: 3 repeats in 19 trials)
        self._proposed: dict[int, dict[str, Any]] = {}
        self._lock = threading.Lock()  # one proposal at a time, recorded before the next

    def infer_relative_search_space(
        self, study: Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        return self._space.distributions(self.encoding)

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        if not search_space or trial.system_attrs.get("fixed_params"):
            return {}
        with self._lock:
            params = self._proposed[trial.number] = self.propose(study, trial)
        return params

    def canonical(self, choice: Sequence[int]) -> tuple[int, ...]:
        """The point, by choice index per knob, that stands for ``choice``'s config (itself
        unless ``"auto"`` choices alias)."""
        if self._aliases is None:
            return tuple(choice)
        return tuple(a[c] for a, c in zip(self._aliases, choice, strict=True))

    def own_joint(self, group: Sequence[int]) -> list[bool]:
        """Per joint choice of the knobs ``group`` (in row-major order): whether each of its
        choices stands for its config (:meth:`canonical`); memoised per group."""
        key = tuple(group)
        if key not in self._joint_memo:
            sizes = [range(self._space.knobs[i].size) for i in key]
            aliases = self._aliases
            self._joint_memo[key] = [
                aliases is None or all(aliases[i][c] == c for i, c in zip(key, combo, strict=True))
                for combo in itertools.product(*sizes)
            ]
        return self._joint_memo[key]

    def params_of(self, trial: FrozenTrial) -> dict[str, Any]:
        """``trial``'s parameters, or, while it has not stored them all yet (another thread's
        trial, just asked), those this sampler proposed to it. Called from :meth:`propose`,
        under the sampler's lock."""
        if len(trial.params) == len(self._space.knobs):
            self._proposed.pop(trial.number, None)  # stored: the proposal is not needed again
            return trial.params
        return self._proposed.get(trial.number, trial.params)

    @abc.abstractmethod
    def propose(self, study: Study, trial: FrozenTrial) -> dict[str, Any]:
        """Parameter values (in ``encoding``) of the point ``trial`` evaluates."""

    def sample_independent(
        self,
        study: Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        return self._fallback.sample_independent(study, trial, param_name, param_distribution)
