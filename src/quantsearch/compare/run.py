"""Running a comparison: every strategy once per seed on one space, sharing one evaluation cache.

Evaluations are deterministic given the config and the data, so all runs may share one
evaluation cache: the whole comparison then costs at most one evaluation per distinct config.
Sharing never changes a run's trial sequence: each run sees the cache through a
:class:`RunCache`, which answers from the shared results but counts only the configs *this run*
has asked for, so a run stops when it has itself seen every point, exactly as it would alone.
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from quantsearch.compare.analysis import compare_results
from quantsearch.compare.result import ComparisonResult, jsonable, read_meta
from quantsearch.config import Config
from quantsearch.errors import ConfigError
from quantsearch.paths import check_in_the_way, writable_dir
from quantsearch.search.api import prepare_from_config, run_dir_lock, run_search
from quantsearch.search.config import (
    TRIALS_PER_EVALUATION_CAP,
    CompareConfig,
    SearchConfig,
    StrategySpec,
)
from quantsearch.search.evaluate import Evaluation, Evaluator
from quantsearch.search.objective import objective_noise
from quantsearch.search.precheck import Precheck
from quantsearch.search.progress import progress_enabled
from quantsearch.search.results import SearchResult
from quantsearch.search.run_files import SEARCH_MARKERS
from quantsearch.search.space import SearchSpace
from quantsearch.search.strategies import STRATEGIES
from quantsearch.search.study import CachedResult, EvaluationCache
from quantsearch.search.trial import TrialInfo
from quantsearch.validate import study_name

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial

__all__ = ["RunCache", "compare_from_config", "run_comparison"]


@dataclass
class RunCache(EvaluationCache):
    """One run's view of a shared :class:`EvaluationCache`.

    Results come from (and go to) ``shared``, so a config is evaluated once in the whole
    comparison; ``len()`` is the number of distinct configs *this run* asked for, so the study
    loop's ``stop_when_exhausted`` stops the run when it has seen every point, as it would alone
    (with the shared cache's length, every run after a full enumeration would stop at once).
    """

    shared: EvaluationCache = field(default_factory=EvaluationCache)
    seen: set[str] = field(default_factory=set)

    def get_or_evaluate(
        self, key: str, trial_number: int, evaluate: Callable[[], Evaluation]
    ) -> tuple[CachedResult, bool]:
        self.seen.add(key)
        return self.shared.get_or_evaluate(key, trial_number, evaluate)

    def peek(self, key: str) -> CachedResult | None:
        """The shared result for ``key``; a hit counts as a config this run asked for (the
        batched brute-force loop answers repeats with it instead of ``get_or_evaluate``)."""
        hit = self.shared.peek(key)
        if hit is not None:
            self.seen.add(key)
        return hit

    def put(self, key: str, result: CachedResult) -> None:
        """Keep a result this run evaluated, in the shared cache."""
        self.seen.add(key)
        self.shared.put(key, result)

    def __len__(self) -> int:
        return len(self.seen)

    def restore(self, trials: Sequence[FrozenTrial]) -> None:
        self.shared.restore(trials)
        for t in trials:
            key = TrialInfo.from_trial(t).config_hash
            if key is not None and key in self.shared.results:
                self.seen.add(key)


def _run_config(
    cfg: SearchConfig, strategy: str, seed: int, n_trials: int, n_evaluations: int | None = None
) -> SearchConfig:
    options = dict(cfg.strategy.options) if strategy == cfg.strategy.name else {}
    # A comparison must be reproducible: no timeout, one trial at a time, cached repeats.
    return dataclasses.replace(
        cfg,
        strategy=StrategySpec(strategy, options),
        seed=seed,
        n_trials=n_trials,
        n_evaluations=n_evaluations,
        timeout=None,
        n_jobs=1,
        cache=True,
        stop_when_exhausted=True,
        study=None,
        storage=None,
    )


def run_comparison(
    space: SearchSpace,
    evaluator: Evaluator,
    cfg: SearchConfig,
    *,
    strategies: Sequence[str],
    seeds: Sequence[int],
    n_trials: int,
    ground_truth_budget: int = 4096,
    tolerance: float = 0.0,
    budgets: Sequence[int] = (),
    shared_cache: bool = True,
    progress: bool | None = None,
    fingerprint_extra: dict[str, Any] | None = None,
    n_evaluations: int | None = None,
) -> ComparisonResult:
    """Run every strategy for every seed (in memory) and measure them.

    Args:
        space, evaluator, cfg: as from :func:`quantsearch.search.api.prepare_search`.
        strategies: registered strategy names (aliases allowed).
        seeds: one run per strategy and seed.
        n_trials: the trial budget of every run.
        ground_truth_budget: enumerate the space first when it has at most this many points.
        shared_cache: one evaluation cache for all runs; ``False`` gives each run its own (the
            trial sequences are the same either way; only the evaluation count differs).
        progress: a progress bar over the runs, on stderr; ``None`` (the default): on in a
            notebook, off elsewhere, as :func:`~quantsearch.search.progress.progress_enabled`.
        n_evaluations: every run also stops after this many distinct evaluations (equal cost
            per strategy); ``budgets`` then count distinct evaluations, and ``n_trials`` is a cap.

    Example:
        >>> import torch
        >>> from quantsearch.graph import trace
        >>> from quantsearch.models import build_model
        >>> from quantsearch.data import Split
        >>> from quantsearch.search.api import prepare_search
        >>> from quantsearch.search.config import parse_search_config
        >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
        <...>
        >>> model = build_model("jsc-tiny").eval()
        >>> data = Split(torch.randn(64, 16), torch.randint(0, 5, (64,)))
        >>> cfg = parse_search_config({
        ...     "space": {"choices": {"linear": {"weight": [[8, 4], [4, 2]]}}},
        ...     "objectives": {"accuracy": {"direction": "maximize"}}})
        >>> space, evaluator = prepare_search(trace(model, data.x[:8]), cfg, data)
        >>> res = run_comparison(space, evaluator, cfg, strategies=["tpe", "random"],
        ...     seeds=[0, 1], n_trials=4)
        >>> res.reference, res.evaluations <= space.size
        ('exhaustive', True)
    """
    names = tuple(STRATEGIES.canonical(s, key="compare.strategies") for s in strategies)
    if not names:
        raise ConfigError("compare.strategies: got [], allowed: at least one strategy")
    if not seeds:
        raise ConfigError("compare.seeds: got 0 seeds, allowed: at least 1")
    if cfg.combine == "pareto":
        for s in names:
            if not STRATEGIES.get(s).multi_objective:
                raise ConfigError(
                    f"compare.strategies: got {s!r} with combine = 'pareto', which it does not "
                    f"support, allowed: multi-objective strategies "
                    f"{[n for n, st in STRATEGIES.items() if st.multi_objective]}"
                )
    shared = EvaluationCache()
    caches: list[EvaluationCache] = []

    def cache() -> EvaluationCache:
        c = RunCache(shared=shared) if shared_cache else EvaluationCache()
        caches.append(c)
        return c

    enumerate_space = space.size <= ground_truth_budget
    total = len(names) * len(seeds) + int(enumerate_space)
    results: list[SearchResult] = []
    truth = None
    with _progress(progress, total) as step:
        if enumerate_space:
            step("ground truth (brute force, every point)")
            with _population(space, evaluator, cfg):
                truth = run_search(
                    space,
                    evaluator,
                    _run_config(cfg, "brute_force", cfg.seed, space.size),
                    run_dir=None,
                    storage=None,
                    study_name="ground-truth",
                    cache=cache(),
                    fingerprint_extra=fingerprint_extra,
                )
        for name in names:
            for seed in seeds:
                step(f"{name} seed {seed}")
                results.append(
                    run_search(
                        space,
                        evaluator,
                        _run_config(cfg, name, seed, n_trials, n_evaluations),
                        run_dir=None,
                        storage=None,
                        study_name=f"{name}-seed{seed}",
                        cache=cache(),
                        fingerprint_extra=fingerprint_extra,
                    )
                )
        step(None)
    spent = len(shared.results) if shared_cache else sum(len(c) for c in caches)
    noise, noisy = objective_noise(cfg, evaluator.baseline())  # measured once: shared by all
    return compare_results(
        results,
        ground_truth=truth,
        tolerance=tolerance,
        budgets=budgets,
        n_trials=n_trials,
        evaluations=spent,
        shared_cache=shared_cache,
        budget_unit="trials" if n_evaluations is None else "evaluations",
        noise=noise,
        noisy_metrics=noisy,
    )


def _population(
    space: SearchSpace, evaluator: Evaluator, cfg: SearchConfig
) -> AbstractContextManager[None]:
    """The ground truth's every config evaluated first as one population (metrics equal to one
    evaluation each; none its run pre-checks infeasible), which its brute-force run then reads
    back one trial at a time. Not where the run would measure some points partly (fidelity)
    or the population path refuses the metrics: the run then evaluates as it would alone."""
    if cfg.fidelity.method != "full" or evaluator.population_refusal() is not None:
        return nullcontext()
    points = (evaluator.resolve(space.layer_formats(p)) for p in space.enumerate())
    return evaluator.answering(Precheck(evaluator, cfg, evaluator.baseline()).to_measure(points))


@contextmanager
def _progress(enabled: bool | None, total: int) -> Iterator[Callable[[str | None], None]]:
    if not progress_enabled(enabled):
        yield lambda label: None
        return
    with Progress(
        TextColumn("[bold]runs"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[s]}"),
        console=Console(stderr=True),  # stdout is the table's, or the --json document's
    ) as bar:
        task = bar.add_task("runs", total=total, s="")
        started = {"n": 0}

        def step(label: str | None) -> None:
            bar.update(task, completed=started["n"], s=label or "done")
            started["n"] += 1

        yield step
        bar.update(task, completed=total)


class SearchSettingUnused(UserWarning):
    """A ``[search]`` setting a comparison does not use (it runs its studies alike)."""


def _warn_unused(cfg: SearchConfig, names: Sequence[str]) -> None:
    """Say which ``[search]`` settings the comparison leaves aside (:func:`_run_config`): it
    was silent, and a storage URL given for ``search`` looked kept; so were the strategy's
    options when that strategy is not among ``names`` (canonical) compared."""
    unused = [f"search.{k}" for k in ("storage", "study", "timeout") if getattr(cfg, k)]
    own = cfg.strategy
    if own.options and own.name not in names:
        warnings.warn(
            SearchSettingUnused(
                f"compare: search.strategy.options not used: they are for {own.name!r}, which is "
                f"not among the strategies compared ({', '.join(names)})"
            ),
            stacklevel=3,
        )
    unused += ["search.n_jobs"] if cfg.n_jobs > 1 else []
    unused += ["search.cache = false"] if not cfg.cache else []
    if unused:
        warnings.warn(
            SearchSettingUnused(
                f"compare: {', '.join(unused)} not used: a comparison's studies run in memory, "
                "one trial at a time, untimed and cached, so that they repeat"
            ),
            stacklevel=3,
        )


def compare_from_config(
    config: Config,
    *,
    load: str | None = None,
    strategies: Sequence[str] | None = None,
    seeds: int | None = None,
    n_trials: int | None = None,
    run_dir: str | Path | None = None,
    name: str | None = None,
    shared_cache: bool | None = None,
    progress: bool | None = None,
    n_evaluations: int | None = None,
) -> ComparisonResult:
    """What ``quantsearch compare`` runs: the config's model, data, ``[search]`` and ``[compare]``.

    Arguments given here override ``[compare]`` (``n_trials``: then ``search.n_trials``). The
    comparison's data files are written to ``<run_dir>/<name>`` (default
    ``<config run_dir>/<stem>-compare``); ``quantsearch.report.write_report(result.run_dir)``
    then writes its report (the ``compare`` command does both).
    """
    if config.search is None:
        raise ConfigError(
            f"search: got no [search] table in {config.source}, allowed: a config with one (`compare` "
            "needs it)"
        )
    cfg: SearchConfig = config.search
    cc: CompareConfig = config.compare or CompareConfig()
    n_seeds = seeds if seeds is not None else cc.seeds
    if n_seeds < 1:
        raise ConfigError(f"--seeds: got {n_seeds}, allowed: an integer >= 1")
    evals = n_evaluations or cc.n_evaluations
    # With an evaluation budget the trial budget is only a cap (as in [search]).
    trials = (
        n_trials
        or cc.n_trials
        or (cfg.n_trials if evals is None else TRIALS_PER_EVALUATION_CAP * evals)
    )
    if trials < 1:
        raise ConfigError(f"--trials: got {trials}, allowed: an integer >= 1")
    names = tuple(strategies) if strategies is not None else cc.strategies
    _warn_unused(cfg, names)
    share = cc.shared_cache if shared_cache is None else shared_cache

    space, evaluator, extra = prepare_from_config(config, cfg, load)
    folder = (
        study_name(name, "--name") if name is not None else f"{Path(config.source).stem}-compare"
    )
    out = Path(run_dir or config.run_dir) / folder
    writable_dir(out.parent, "--run-dir" if run_dir is not None else "run_dir")
    name_key = "--name" if name is not None else "--config"
    writable_dir(out, name_key)  # a FIFO or a link to nothing at the folder's own name
    described = space.describe()
    problem = _plain(
        {
            "model": extra["model"],
            "dataset": extra["data"][0],
            "space": described,
            **{k: getattr(cfg, k) for k in ("combine", "objectives", "constraints")},
        }
    )
    _check_same_problem(out, problem, name_key)
    with run_dir_lock(out):
        result = run_comparison(
            space,
            evaluator,
            cfg,
            strategies=names,
            seeds=[cfg.seed + i for i in range(n_seeds)],
            n_trials=trials,
            ground_truth_budget=cc.ground_truth_budget,
            tolerance=cc.tolerance,
            budgets=cc.budgets,
            shared_cache=share,
            progress=progress,
            fingerprint_extra=extra,
            n_evaluations=evals,
        )
        meta = {
            "problem": problem,
            "source": config.source,
            "model": extra["model"],
            "dataset": extra["data"][0],  # the study identity's [name, digest of the split]
            "samples": len(evaluator.data),
            # each knob's labels as the search spelled them (a ReLU's input is ``ufixed``): the
            # report reads them here instead of the op registry, which imports torch
            "search": {
                **dataclasses.asdict(cfg),
                "knob_labels": {k.name: list(k.labels) for k in space.knobs},
            },
            "compare": {
                "strategies": list(result.strategies),
                "seeds": list(result.seeds),
                "n_trials": trials,
                "n_evaluations": evals,
                "ground_truth_budget": cc.ground_truth_budget,
                "tolerance": cc.tolerance,
                "budgets": list(result.budgets),
                "shared_cache": share,
            },
            "space": described,
        }
        result.write(out, meta)
    return result


def _plain(value: Any) -> Any:
    """``value`` as its JSON file reads back (tuples as lists; what JSON cannot hold, such as
    the objectives' and constraints' dataclasses, as its ``str``)."""
    return json.loads(json.dumps(jsonable(value), default=str))


_COMPARE_OWN = ("comparison.json", "compare_config.json", "runs.jsonl", "configs.jsonl")
_COMPARE_OUT = ("comparison.csv", "comparison.md", "report.html", "report.md", "images")


def _check_same_problem(out: Path, problem: dict[str, Any], key: str) -> None:
    """Refuse a comparison over one of another problem (``problem`` as :func:`_plain` gives
    it) in ``out``, as a search refuses a study of another config; and a search's run directory,
    files of compare's names no comparison wrote, a folder where a file of it goes or the
    reverse (a failure after the work, part way through the writes)."""
    out_files = (*_COMPARE_OWN, *_COMPARE_OUT[:-1])
    check_in_the_way(out, key, out_files, ("images", "ground_truth"), writer="a comparison")
    search = [f for f in SEARCH_MARKERS if (out / f).exists()]
    if search and not (out / "comparison.json").exists():  # its report and images replaced
        raise ConfigError(
            f"{key}: got {str(out)!r}, a search's run directory (it holds {search[0]}), "
            "allowed: another --name, a folder of the comparison's own"
        )
    if not any((out / f).exists() for f in _COMPARE_OWN):  # the user's report.html replaced
        foreign = [f for f in _COMPARE_OUT if (out / f).exists() or (out / f).is_symlink()]
        if foreign:
            raise ConfigError(
                f"{key}: got {str(out)!r}, which holds {foreign[0]} no `quantsearch compare` wrote "
                "(no comparison.json beside it), allowed: another --name, a folder of the "
                "comparison's own"
            )
    old = read_meta(out, key).get("problem")
    if not isinstance(old, dict):
        return  # nothing there, or a comparison that predates the record
    differ = sorted(k for k, v in problem.items() if old.get(k) != v)
    if differ:
        raise ConfigError(
            f"{key}: got {str(out)!r}, a comparison of another problem (its "
            f"{', '.join(differ)} {'differs' if len(differ) == 1 else 'differ'}), allowed: "
            "another --name, or the same problem"
        )
