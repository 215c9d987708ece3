"""What a search produced: trial records, the baseline, the best config or the Pareto front,
and the files of a run directory (trials.csv, trials.jsonl, best.json / pareto.json ...).

:meth:`SearchResult.write` writes a search run directory and :meth:`SearchResult.read` reads one
back (directories of older versions too: unknown keys of ``trials.jsonl`` are ignored).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from quantsearch.atomic import open_atomic
from quantsearch.errors import ConfigError
from quantsearch.search.pareto import pareto_front
from quantsearch.search.run_files import (
    check_baseline,
    check_same_write,
    check_summary,
    damaged,
    dump_json,
    json_default,
    read_json,
    read_trials,
    write_csv,
)
from quantsearch.search.trial import TrialInfo

if TYPE_CHECKING:
    import pandas as pd
    from optuna import Study
    from torch import fx

    from quantsearch.data import DataSplits

__all__ = [
    "ReportFiles",
    "SearchResult",
    "SearchedModel",
    "read_json",
    "read_trials",
    "records_from_study",
    "write_csv",
]


@dataclass(frozen=True)
class ReportFiles:
    """The report files of a run directory, once written (``quantsearch.report.write_report``)."""

    html: Path
    markdown: Path
    images: tuple[Path, ...]
    comparison_markdown: Path | None = None


@dataclass(frozen=True)
class SearchedModel:
    """What a search quantized: the pristine traced model every trial started from.

    Attributes:
        graph: the traced float model (never modified: :meth:`SearchResult.model` copies it).
        name: its zoo name or ``"file.py:build"`` (empty for a model given from Python).
        data: the dataset's splits, when known (a run directory's; for fine-tuning and the
            test-split metrics).
        eval_samples: how many validation samples each trial was measured on (``None``: all).
        batch_size: the evaluation batch size.
        base_dir: the folder a ``"file.py:build"`` name is relative to.
    """

    graph: fx.GraphModule
    name: str = ""
    data: DataSplits | None = None
    eval_samples: int | None = None
    batch_size: int = 1024
    base_dir: Path | None = None


def records_from_study(study: Study) -> list[TrialInfo]:
    """Trial records for every trial of an Optuna study, in trial-number order."""
    trials = study.get_trials(deepcopy=False)
    return sorted((TrialInfo.from_trial(t) for t in trials), key=lambda r: r.number)


@dataclass
class SearchResult:
    """The outcome of :func:`quantsearch.search`.

    Attributes:
        trials: every trial, in trial-number order.
        baseline: metrics of the float model on the same data.
        directions: Optuna study directions (one for a weighted sum).
        combine: ``weighted_sum`` or ``pareto``.
        objective_names: the objective metrics, in order.
        space_size: the number of distinct points in the space.
        run_dir: where the files were written (``None`` for in-memory searches).
        study_name: the Optuna study.
        configs: config hash -> resolved per-node config, for every distinct evaluation.
    """

    trials: list[TrialInfo]
    baseline: dict[str, float]
    directions: list[str]
    combine: str
    objective_names: list[str]
    space_size: int
    run_dir: Path | None = None
    study_name: str = ""
    strategy: str = ""
    seed: int = 0
    configs: dict[str, dict[str, Any]] = field(default_factory=dict)
    study: Study | None = None  # for users who want Optuna's own tools
    searched: SearchedModel | None = None  # the model the trials quantized, when known
    test_metrics: dict[int, dict[str, float]] = field(default_factory=dict)  # by trial number

    @property
    def complete(self) -> list[TrialInfo]:
        return [t for t in self.trials if t.measured]

    @property
    def n_evaluations(self) -> int:
        """Distinct configs actually evaluated (cache hits excluded)."""
        return sum(1 for t in self.trials if t.evaluated)

    @property
    def feasible(self) -> list[TrialInfo]:
        return [t for t in self.trials if t.is_feasible]

    @property
    def best(self) -> TrialInfo | None:
        """The best feasible trial (weighted sum); the earliest of equals. Never an infeasible one."""
        if self.combine != "weighted_sum":
            return None
        feasible = [t for t in self.feasible if t.values is not None]
        if not feasible:
            return None
        return max(feasible, key=lambda t: (_first(t), -t.number))

    @property
    def pareto(self) -> list[TrialInfo]:
        """Feasible, non-dominated trials, one per distinct config (the first trial that had it),
        best first in the first objective."""
        seen: set[str | None] = set()
        unique = []
        for t in self.feasible:
            if t.values is not None and t.config_hash not in seen:
                seen.add(t.config_hash)
                unique.append(t)
        idx = pareto_front([t.values or () for t in unique], self.directions)
        sign = -1.0 if self.directions[0] == "maximize" else 1.0
        return sorted((unique[i] for i in idx), key=lambda t: (sign * _first(t), t.number))

    def to_dataframe(self) -> pd.DataFrame:
        """One row per trial, one column per parameter and metric (as ``trials.csv``)."""
        import pandas as pd  # deferred for `quantsearch --help` start-up

        return pd.DataFrame([t.row() for t in self.trials])

    def config_of(self, t: TrialInfo) -> dict[str, Any] | None:
        return self.configs.get(t.config_hash or "") or t.config

    # -- from a trial back to its model -------------------------------------------------------

    def trial(self, number: int, *, key: str = "trial") -> TrialInfo:
        """The trial numbered ``number``; a config error names ``key`` and the numbers allowed.
        A trial whose config failed is refused too: its model is what failed (quantize, export
        and finetune built it and wrote it out as if it had been measured)."""
        for t in self.trials:
            if t.number != number:
                continue
            if t.config_failed:
                ok = [u.number for u in self.trials if u.measured]
                allowed = ", ".join(map(str, ok[:8])) + (", ..." if len(ok) > 8 else "")
                why = next(iter((t.error or "").splitlines()), "")[:200]  # an error may be ""
                raise ConfigError(
                    f"{key}: got {number} (its config failed: {why}), allowed: a trial that did not "
                    f"fail ({allowed or 'none'})"
                )
            return t
        numbers = [t.number for t in self.trials if self.config_of(t) is not None]
        allowed = f"{numbers[0]}..{numbers[-1]}" if numbers else "none (no trial has run)"
        raise ConfigError(f"{key}: got {number}, allowed: a trial number of this run ({allowed})")

    def select(
        self,
        *,
        trial: int | None = None,
        best: bool = False,
        pareto: int | None = None,
        keys: tuple[str, str, str] = ("trial", "best", "pareto"),
    ) -> TrialInfo:
        """One trial: by number, the best one (weighted sum) or the Pareto member ``pareto``
        (0 = the first of :attr:`pareto`). With none of them: the best, or the front's first.

        Raises:
            ConfigError: naming the option (``keys``): an unknown trial number, ``best`` on a
                Pareto run, ``pareto`` on a weighted-sum run or past the front's end.
        """
        k_trial, k_best, k_pareto = keys
        given = [
            k for k, v in zip(keys, (trial, best or None, pareto), strict=True) if v is not None
        ]
        if len(given) > 1:
            raise ConfigError(f"{given[1]}: got it with {given[0]}, allowed: one of {list(keys)}")
        if trial is not None:
            return self.trial(trial, key=k_trial)
        if pareto is None and (best or self.combine == "weighted_sum"):
            if self.combine != "weighted_sum":
                raise ConfigError(
                    f"{k_best}: got it on a Pareto search ({self.combine}), allowed: "
                    f"{k_pareto} K (0..{len(self.pareto) - 1}) or {k_trial} N"
                )
            if self.best is None:
                raise ConfigError(
                    f"{k_best}: got it on a run without a feasible trial, allowed: {k_trial} N"
                )
            return self.best
        if self.combine == "weighted_sum":
            raise ConfigError(
                f"{k_pareto}: got {pareto} on a weighted-sum run (no Pareto front), allowed: "
                f"{k_best} or {k_trial} N"
            )
        front = self.pareto
        index = 0 if pareto is None else pareto
        if not 0 <= index < len(front):
            allowed = f"0..{len(front) - 1}" if front else "none (the front is empty)"
            raise ConfigError(f"{k_pareto}: got {index}, allowed: {allowed} (the front's members)")
        return front[index]

    def model(self, trial: TrialInfo | int | None = None, *, key: str = "trial") -> fx.GraphModule:
        """The quantized model of a trial (a number, a :class:`TrialInfo`, or by default the
        best trial or the front's first), in eval mode: its weights on their grids.

        Raises:
            ConfigError: the result does not know its model (:attr:`searched` unset: open a
                run directory with :func:`quantsearch.open_run`), an unknown trial, or a trial
                without a recorded config.

        Example:
            >>> import torch
            >>> from quantsearch.models import build_model
            >>> from quantsearch.search import search
            >>> x, y = torch.randn(64, 16), torch.randint(0, 5, (64,))
            >>> r = search(build_model("jsc-tiny").eval(), (x, y), strategy="brute_force",
            ...     space={"choices": {"linear": {"weight": [[8, 4], [4, 2]]}}},
            ...     objectives={"accuracy": {"direction": "maximize"}}, n_trials=2)
            >>> qgm = r.model(r.best)  # the best trial's quantized model
            >>> str(qgm.get_submodule("seq_blocks.2").q_weight) in ("fixed(8,4)", "fixed(4,2)")
            True
        """
        # Each imports torch: deferred, as this module is imported by `quantsearch --help`.
        from quantsearch.passes.transform import ResolvedConfig, quantize

        if self.searched is None:
            raise ConfigError(
                f"{key}: got a result without its model, allowed: a result of search() or "
                "of quantsearch.open_run(RUN_DIR)"
            )
        t = self.select() if trial is None else trial
        t = self.trial(t, key=key) if isinstance(t, int) else t
        config = self.config_of(t)
        if config is None:
            raise ConfigError(
                f"{key}: got {t.number} ({t.state}), which has no recorded config, allowed: a trial that "
                "ran (see trials.csv)"
            )
        gm = self.searched.graph
        was = gm.training
        gm.eval()  # weights rounded once, at transform time, as the search measured them
        try:
            return quantize(gm, ResolvedConfig.from_dict(config, gm=gm, key=f"{key} {t.number}"))
        finally:
            gm.train(was)

    def best_rows(self, k: int = 5) -> list[dict[str, Any]]:
        """Rows for the console: the top-``k`` distinct feasible configs, or the front."""
        if self.combine == "weighted_sum":
            seen: set[str | None] = set()
            ranked = []
            for t in sorted(self.feasible, key=lambda t: (-_first(t), t.number)):
                if t.config_hash not in seen:
                    seen.add(t.config_hash)
                    ranked.append(t)
            chosen = ranked[:k]
        else:
            chosen = self.pareto
        rows = []
        for t in chosen:
            row: dict[str, Any] = {"trial": t.number}
            if t.values is not None and len(t.values) == 1:
                row["objective"] = t.values[0]
            row.update(t.params)
            row.update({m: t.metrics.get(m) for m in self.objective_names})
            rows.append(row)
        return rows

    # -- files --------------------------------------------------------------------------------

    @classmethod
    def read(cls, run_dir: str | Path) -> SearchResult:
        """A search run directory's result, read back from the files :meth:`write` wrote."""
        rd = Path(run_dir)
        summary_path = rd / "best.json" if (rd / "best.json").is_file() else rd / "pareto.json"
        summary = read_json(summary_path)
        if not isinstance(summary, dict):
            raise damaged(summary_path, f"a JSON {type(summary).__name__}, not an object")
        missing = [
            k for k in ("directions", "combine", "objectives", "space_size") if k not in summary
        ]
        if missing:
            raise damaged(summary_path, f"it lacks {missing}")
        check_summary(summary_path, summary)
        trials = read_trials(rd / "trials.jsonl")
        check_same_write(summary_path, summary, trials)
        base_path = summary_path if summary.get("baseline") else rd / "baseline.json"
        baseline = check_baseline(
            base_path, summary.get("baseline") or read_json(rd / "baseline.json")
        )
        configs = {
            t.config_hash: t.config for t in trials if t.config is not None and t.config_hash
        }
        try:
            return cls(
                trials=trials,
                baseline=baseline,
                directions=[str(d) for d in summary["directions"]],
                combine=str(summary["combine"]),
                objective_names=[str(o) for o in summary["objectives"]],
                space_size=int(summary["space_size"]),
                run_dir=rd,
                study_name=str(summary.get("study", rd.name)),
                strategy=str(summary.get("strategy", "")),
                seed=int(summary.get("seed", 0)),
                configs=configs,
                test_metrics=_test_metrics_of(summary),
            )
        except (TypeError, ValueError, KeyError) as exc:
            raise damaged(summary_path, f"{type(exc).__name__}: {exc}") from None

    def write(self, run_dir: Path) -> list[Path]:
        """Write trials.csv, trials.jsonl, baseline.json and best.json or pareto.json."""
        run_dir.mkdir(parents=True, exist_ok=True)
        written = [run_dir / "baseline.json", run_dir / "trials.jsonl", run_dir / "trials.csv"]
        dump_json(written[0], self.baseline)
        with open_atomic(written[1]) as fh:
            for t in self.trials:
                fh.write(json.dumps(t.to_dict(), default=json_default) + "\n")
        write_csv(written[2], [t.row() for t in self.trials])
        summary = self.summary()
        if self.combine == "weighted_sum":
            path = run_dir / "best.json"
            dump_json(path, {**summary, "best": self._trial_json(self.best)})
        else:
            path = run_dir / "pareto.json"
            dump_json(path, {**summary, "front": [self._trial_json(t) for t in self.pareto]})
        written.append(path)
        return written

    def summary(self) -> dict[str, Any]:
        return {
            "study": self.study_name,
            "strategy": self.strategy,
            "seed": self.seed,
            "combine": self.combine,
            "objectives": self.objective_names,
            "directions": self.directions,
            "space_size": self.space_size,
            "trials": len(self.trials),
            "complete": len(self.complete),
            "failed": sum(1 for t in self.trials if t.state == "FAIL" or t.config_failed),
            "evaluations": self.n_evaluations,
            "prechecked": sum(1 for t in self.trials if t.prechecked),
            "pruned": sum(1 for t in self.trials if t.state == "PRUNED"),
            "samples": sum(t.samples or 0 for t in self.trials),
            "feasible": len(self.feasible),
            "baseline": self.baseline,
            "metric_splits": {
                "metrics": "validation (the split the search chose by)",
                **(
                    {"test_metrics": "test (held out: never seen by the search)"}
                    if self.test_metrics
                    else {}
                ),
            },
        }

    def _trial_json(self, t: TrialInfo | None) -> dict[str, Any] | None:
        if t is None:
            return None
        return {
            "trial": t.number,
            "values": t.values,
            "params": t.params,
            "metrics": t.metrics,
            **(
                {"test_metrics": self.test_metrics[t.number]}
                if t.number in self.test_metrics
                else {}
            ),
            "config": self.config_of(t),
        }


def _first(t: TrialInfo) -> float:
    """The first objective value of a completed trial."""
    assert t.values is not None, "only completed trials have objective values"
    return t.values[0]


def _test_metrics_of(summary: dict[str, Any]) -> dict[int, dict[str, float]]:
    """``trial -> test metrics`` from best.json's ``best`` or pareto.json's ``front``."""
    entries = [summary.get("best"), *(summary.get("front") or [])]
    return {
        int(e["trial"]): dict(e["test_metrics"])
        for e in entries
        if isinstance(e, dict) and isinstance(e.get("test_metrics"), dict)
    }
