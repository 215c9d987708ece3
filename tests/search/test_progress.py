"""When a search shows its progress bar by default: in a Jupyter kernel, not elsewhere."""

from __future__ import annotations

import os
import queue
import sys
from pathlib import Path

import pytest
import torch

from quantsearch.search import search
from quantsearch.search.progress import in_notebook, progress_enabled

SPACE = {"choices": {"linear": {"weight": [[8, 4], [4, 2]]}}}
OBJECTIVES = {"accuracy": {"direction": "maximize"}}
SRC = str(Path(__file__).resolve().parents[2] / "src")


def test_a_plain_interpreter_is_not_a_notebook() -> None:
    from rich.console import Console

    assert in_notebook() is False
    assert in_notebook() == Console().is_jupyter  # the referee: rich's own detection
    assert progress_enabled(None) is False
    assert progress_enabled(True) is True and progress_enabled(False) is False


def test_the_default_search_prints_nothing_outside_a_notebook(
    mlp: torch.nn.Module, digits: object, capsys: pytest.CaptureFixture[str]
) -> None:
    search(mlp, digits.val, space=SPACE, objectives=OBJECTIVES, strategy="brute_force")  # type: ignore[attr-defined]
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""


def test_an_explicit_progress_bar_goes_to_stderr(
    mlp: torch.nn.Module, digits: object, capsys: pytest.CaptureFixture[str]
) -> None:
    result = search(
        mlp, digits.val, space=SPACE, objectives=OBJECTIVES, strategy="brute_force",  # type: ignore[attr-defined]
        progress=True,
    )  # fmt: skip
    out = capsys.readouterr()
    assert out.out == ""
    assert "trials" in out.err and f"{len(result.trials)}/" in out.err


def _run_in_kernel(code: str) -> str:
    """Run ``code`` in a real IPython kernel (ipykernel, started by jupyter_client); its stdout."""
    manager = pytest.importorskip("jupyter_client.manager")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")])}
    km, kc = manager.start_new_kernel(kernel_name="python3", extra_arguments=[], env=env)
    try:
        msg_id = kc.execute(code)
        out = []
        while True:
            try:
                msg = kc.get_iopub_msg(timeout=60)
            except queue.Empty:
                break
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream" and content["name"] == "stdout":  # not a library's warning
                out.append(content["text"])
            elif kind == "error":
                raise AssertionError("\n".join(content["traceback"]))
            elif kind == "status" and content["execution_state"] == "idle":
                break
        return "".join(out)
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


@pytest.mark.slow
def test_a_jupyter_kernel_is_a_notebook_and_progress_defaults_on() -> None:
    pytest.importorskip("ipykernel")
    out = _run_in_kernel(
        "import sys\n"
        "from rich.console import Console\n"
        "from quantsearch.search.progress import in_notebook, progress_enabled\n"
        "print(sys.executable, in_notebook(), Console().is_jupyter, progress_enabled(None),"
        " progress_enabled(False))\n"
    )
    executable, *flags = out.split()
    assert executable == sys.executable  # the kernel ran this interpreter
    assert flags == ["True", "True", "True", "False"]  # referee: rich's Console().is_jupyter


def test_a_pareto_bar_counts_the_configs_of_the_front(
    mlp: torch.nn.Module, digits: object, capsys: pytest.CaptureFixture[str]
) -> None:
    """Random search repeats configs of a 4-point space; each repeat of a front config is a
    front trial too. The bar said 'front 16' beside a front of 3 configs (pareto.json's)."""
    space = {"choices": {"linear": {"weight": [[8, 4], [6, 3], [4, 2], [3, 1]]}}}
    objectives = {"accuracy": {"direction": "maximize"}, "bitops": {}, "combine": "pareto"}
    result = search(
        mlp, digits.val, space=space, objectives=objectives, strategy="random",  # type: ignore[attr-defined]
        n_trials=40, progress=True,
    )  # fmt: skip
    err = capsys.readouterr().err
    front = [p.params for p in result.pareto]
    assert sum(t.params in front for t in result.trials) > len(front)  # repeats of the front
    last = err.replace("\r", "\n").strip().splitlines()[-1]
    assert f"front {len(result.pareto)} " in last, last


def test_a_study_refused_before_any_trial_leaves_only_its_error_line(
    tmp_path: Path,
    mlp_checkpoint: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The CLI's bar (on without -q) was drawn before the study's identity was checked: a
    resume with another --strategy printed 'trials 0/4' above its one error line."""
    from quantsearch.cli import main

    monkeypatch.chdir(tmp_path)
    config = tmp_path / "s.toml"
    config.write_text(
        f'[model]\nname = "mlp-digits"\ncheckpoint = "{mlp_checkpoint.as_posix()}"\n'
        '[search]\nn_trials = 4\n[search.strategy]\nname = "brute_force"\n'
        "[search.space.choices.linear]\nweight = [[8, 4], [4, 2]]\n"
        '[search.objectives]\naccuracy = { direction = "maximize" }\n'
    )
    main(["search", "-c", str(config)])  # returns: a search that ran
    assert "trials" in capsys.readouterr().err  # the bar is drawn for a search that runs
    with pytest.raises(SystemExit) as done:
        main(["search", "-c", str(config), "--strategy", "random"])
    assert done.value.code == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(
        "error: --study: got 's', a study in this storage made with different"
    ), line


def test_the_bars_evaluations_are_the_results_with_successive_halving(
    mlp: torch.nn.Module, digits: object, capsys: pytest.CaptureFixture[str]
) -> None:
    """A config pruned on a prefix ran the model but is not cached: the bar counted the cache
    (14 evals beside the summary's 32 on a 4-bit search). Referee: result.n_evaluations."""
    space = {
        "choices": {
            "linear": {"data_in": [[8, 4], [4, 2], [3, 1]], "weight": [[8, 4], [3, 1], [2, 1]]}
        }
    }
    result = search(
        mlp, digits.val, space=space, objectives=OBJECTIVES, strategy="random",  # type: ignore[attr-defined]
        n_trials=20, constraints={"accuracy_drop": {"max": 0.02}},
        fidelity="successive_halving", progress=True,
    )  # fmt: skip
    err = capsys.readouterr().err
    pruned = [t for t in result.trials if t.state == "PRUNED"]
    assert pruned, "the space's 2- and 3-bit configs are pruned on a prefix"
    last = err.replace("\r", "\n").strip().splitlines()[-1]
    assert f"evals {result.n_evaluations}/9 " in last, last
