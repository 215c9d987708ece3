"""The eighth sweep of bad inputs: what the last stops added, combined in odd ways.

Options of one command that go with another (``export --to qonnx --backend Vitis``),
``--trial`` with ``--best``, ``--pareto`` and ``--samples`` of 0, -1 and 2**40, odd
``--float-as`` formats; run directories of another kind given to ``report``, ``quantize``,
``finetune`` and ``export``; configs whose values are of the right type but wrong for this model
(a node it does not have, a block dimension past the tensor's, a fidelity prefix longer than
the split, objective weights of 0, -1, nan and inf); TOML a user can write by mistake
(duplicate tables, emoji keys, 100,000-character strings, 5,000 nested arrays, 1e309, "8" for
8); and the paths and environment around them (a config that is a folder, a fifo, empty,
binary or not UTF-8; a run_dir that is a file; a malformed ``QUANTSEARCH_STORAGE``).

Each case: exit status 2, one line of the form ``error: <key>: got <given>, allowed:
<allowed>`` (the checker of test_message_form) whose key is the one given, no traceback, and
every file of the folder it runs in (a finished study, a pre-checked one, a quantize output,
the user's configs and checkpoint) byte for byte as before, nothing added. Referee: the form
the project's brief states.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.cli.bad_input import ACC, GOOD, W, add, digest, finished_study, run_cli, sub
from tests.cli.test_message_form import FORM

FROM = ["--from-run", "runs/good"]
PRE = ["--from-run", "runs/pre"]
QONNX = ["export", "--to", "qonnx", *FROM, "--trial", "0"]
HLS = ["export", "--to", "hls4ml", *FROM, "--trial", "0"]

# name: (command line, the key its error line names, a regex its line matches after the key)
OPTION_CASES: dict[str, tuple[list[str], str]] = {
    # options of hls4ml given to a qonnx export, and the reverse
    "qonnx with --backend": ([*QONNX, "--backend", "Vitis", "m.onnx"], "--backend"),
    "qonnx with --io-type": ([*QONNX, "--io-type", "io_stream", "m.onnx"], "--io-type"),
    "--samples without --verify": ([*HLS, "--samples", "10", "prj"], "--samples"),
    "--samples 0": ([*HLS, "--verify", "--samples", "0", "prj"], "--samples"),
    "--samples 2**40": ([*HLS, "--verify", "--samples", str(2**40), "prj"], "--samples"),
    "qonnx --samples 0": ([*QONNX, "--verify", "--samples", "0", "m.onnx"], "--samples"),
    "--float-as empty": ([*HLS, "--float-as", "", "prj"], "--float-as"),
    "--float-as fixed(": ([*HLS, "--float-as", "fixed(", "prj"], "--float-as"),
    "--float-as fixed(8,9)": ([*HLS, "--float-as", "fixed(8,9)", "prj"], "--float-as"),
    "--float-as fixed(0,0)": ([*HLS, "--float-as", "fixed(0,0)", "prj"], "--float-as"),
    "--float-as fixed(-8,4)": ([*HLS, "--float-as", "fixed(-8,4)", "prj"], "--float-as"),
    "--float-as fixed(99999,4)": ([*HLS, "--float-as", "fixed(99999,4)", "prj"], "--float-as"),
    "--float-as ap_fixed<8,4>": ([*HLS, "--float-as", "ap_fixed<8,4>", "prj"], "--float-as"),
    "--float-as minifloat": ([*HLS, "--float-as", "minifloat", "prj"], "--float-as"),
    "--float-as emoji": ([*HLS, "--float-as", "\U0001f680", "prj"], "--float-as"),
    "--float-as nan": ([*HLS, "--float-as", "fixed(nan,4)", "prj"], "--float-as"),
    "--float-as with qonnx": ([*QONNX, "--float-as", "fixed(16,8)", "m.onnx"], "--float-as"),
    # one trial chosen two ways
    "export --trial with --best": ([*HLS, "--best", "prj"], "--best"),
    "finetune --trial with --best": (["finetune", *FROM, "--trial", "0", "--best"], "--best"),
    "finetune --best with --pareto": (["finetune", *FROM, "--best", "--pareto", "1"], "--pareto"),
    "quantize --pareto 0": (["quantize", *FROM, "--pareto", "0"], "--pareto"),
    "quantize --pareto -1": (["quantize", *FROM, "--pareto", "-1"], "--pareto"),
    "quantize --pareto 2**40": (["quantize", *FROM, "--pareto", str(2**40)], "--pareto"),
    "quantize --pareto on a weighted run": (["quantize", *FROM, "--pareto", "1"], "--pareto"),
    "export --pareto 0": (
        ["export", "--to", "qonnx", *FROM, "--pareto", "0", "m.onnx"],
        "--pareto",
    ),
    "quantize --trial past the run": (["quantize", *FROM, "--trial", "999"], "--trial"),
    "quantize --trial without --from-run": (
        ["quantize", "-c", "q.toml", "--trial", "0"],
        "--trial",
    ),
    "quantize --best without --from-run": (["quantize", "-c", "q.toml", "--best"], "--best"),
    "quantize --from-run with --config": (
        ["quantize", *FROM, "--trial", "0", "-c", "q.toml"],
        "--config",
    ),
    "quantize --from-run with --calibration": (
        ["quantize", *FROM, "--trial", "0", "--calibration", "percentile", "--percentile", "99"],
        "--calibration|--percentile",
    ),
    # run directories of another kind
    "report of a quantize output": (["report", "qout"], "RUN_DIR"),
    "report of the working folder": (["report", "."], "RUN_DIR"),
    "report of a file": (["report", "good.toml"], "RUN_DIR"),
    "quantize --from-run a quantize output": (
        ["quantize", "--from-run", "qout", "--trial", "0"],
        "--from-run",
    ),
    "finetune --from-run a quantize output": (
        ["finetune", "--from-run", "qout", "--trial", "0"],
        "--from-run",
    ),
    "export --from-run the working folder": (
        ["export", "--to", "qonnx", "--from-run", ".", "--trial", "0", "m.onnx"],
        "--from-run",
    ),
    "quantize --from-run a file": (
        ["quantize", "--from-run", "good.toml", "--trial", "0"],
        "--from-run",
    ),
    # trials that have no result to fine-tune or quantize
    "finetune of a pre-checked trial": (["finetune", *PRE, "--trial", "0"], "--trial"),
    "quantize of a pre-checked trial": (["quantize", *PRE, "--trial", "0"], "--trial"),
    "export of a pre-checked trial": (
        ["export", "--to", "qonnx", *PRE, "--trial", "0", "m.onnx"],
        "--trial",
    ),
    "finetune --best of a run with none feasible": (["finetune", *PRE, "--best"], "--best"),
    "quantize --best of a run with none feasible": (["quantize", *PRE, "--best"], "--best"),
    # commands' options in odd places
    "summary --sensitivity without a space": (
        ["summary", "-c", "q.toml", "--sensitivity", "--latency-batch", "4"],
        "--latency-batch",
    ),
    "summary --warmup without --latency": (
        ["summary", "-c", "good.toml", "--warmup", "3"],
        "--warmup",
    ),
    "summary --load a run directory": (
        ["summary", "-c", "good.toml", "--load", "runs/good"],
        "--load",
    ),
    "summary --load a config": (["summary", "-c", "good.toml", "--load", "good.toml"], "--load"),
    "search --load a quantize output checkpoint folder": (
        ["search", "-c", "good.toml", "--load", "qout", "-q"],
        "--load",
    ),
    "search --run-dir a file": (
        ["search", "-c", "good.toml", "--run-dir", "good.toml", "-q"],
        "--run-dir",
    ),
    "compare --run-dir a file": (
        ["compare", "-c", "good.toml", "--run-dir", "good.toml", "-q"],
        "--run-dir",
    ),
    "compare --strategies empty": (
        ["compare", "-c", "good.toml", "--strategies", ",", "-q"],
        "--strategies",
    ),
    "compare --strategies twice": (
        ["compare", "-c", "good.toml", "--strategies", "random,random", "-q"],
        "--strategies",
    ),
    "compare --strategies unknown": (
        ["compare", "-c", "good.toml", "--strategies", "random,\U0001f680", "-q"],
        "--strategies",
    ),
    "compare --name a run dir": (
        ["compare", "-c", "good.toml", "--name", "good", "--run-dir", "runs", "-q"],
        "--name",
    ),
    "search --study starting with -": (
        ["search", "-c", "good.toml", "--study=-x", "-q"],
        "--study",
    ),
    "search --storage sqlite memory": (
        ["search", "-c", "good.toml", "--storage", "sqlite://", "-q"],
        "--storage",
    ),
    "search --storage a folder": (
        ["search", "-c", "good.toml", "--storage", "runs", "-q"],
        "--storage",
    ),
    "worker --storage sqlite memory": (
        ["worker", "-c", "good.toml", "--storage", "sqlite://"],
        "--storage",
    ),
    "worker --storage garbage": (["worker", "-c", "good.toml", "--storage", "::::"], "--storage"),
    "train --out a run directory": (["train", "-c", "good.toml", "--out", "runs/good"], "--out"),
    "train --out a config": (["train", "-c", "good.toml", "--out", "good.toml"], "--out"),
    "quantize --out a run directory": (["quantize", "-c", "q.toml", "--out", "runs/good"], "--out"),
    "quantize --out a file": (["quantize", "-c", "q.toml", "--out", "good.toml"], "--out"),
    "finetune --out a run directory": (
        ["finetune", *FROM, "--trial", "0", "--out", "runs/good"],
        "--out",
    ),
    "init --model a checkpoint": (
        ["init", "--model", "runs/good/model.pt:build", "--data", "d.py:load", "-o", "i.toml"],
        "--model",
    ),
    "init --data a folder": (
        ["init", "--model", "m.py:build", "--data", "runs/good:load", "-o", "i.toml"],
        "--data",
    ),
    "quantize --int-weights of minifloat weights": (
        ["quantize", "-c", "mf.toml", "--int-weights", "--out", "qx"],
        r"seq_blocks_0\.weight",
    ),
    # a comparison's folder where a search's run directory goes
    "quantize --from-run a comparison": (
        ["quantize", "--from-run", "runs/good-compare", "--trial", "0"],
        "--from-run",
    ),
    "finetune --from-run a comparison": (
        ["finetune", "--from-run", "runs/good-compare", "--best"],
        "--from-run",
    ),
    "export --from-run a comparison": (
        ["export", "--to", "qonnx", "--from-run", "runs/good-compare", "--trial", "0", "m.onnx"],
        "--from-run",
    ),
    "quantize --out a comparison": (
        ["quantize", *FROM, "--trial", "0", "--out", "runs/good-compare"],
        "--out",
    ),
    "compare --name a search's run directory": (
        ["compare", "-c", "good.toml", "--name", "good", "--strategies", "random", "-q"],
        "--name",
    ),
    # the user's model (Linear layers without a bias) and data
    "search: bias choices for a bias-free layer": (
        ["search", "-c", "u_bias_choice.toml", "-q"],
        r"search\.space\.choices\.linear\.bias",
    ),
    "quantize: by_name bias of a bias-free layer": (
        ["quantize", "-c", "u_bias_by_name.toml", "--out", "qx"],
        r'quantize\.by_name\."?1"?\.bias',
    ),
    "search: choices for a flatten": (
        ["search", "-c", "u_flatten_choice.toml", "-q"],
        r"search\.space\.choices\.flatten",
    ),
    "summary --sensitivity of a user model without data": (
        ["summary", "-c", "u_no_data.toml", "--sensitivity"],
        r"data\.name",
    ),
    "search of a user model without data": (
        ["search", "-c", "u_no_data.toml", "-q"],
        r"data\.name",
    ),
    "examples --config unknown": (["examples", "--config", "\U0001f680"], "--config"),
}

# name: (the config's text from GOOD, the command after `-c CONFIG`, the key its line names)
Edit = Callable[[str], str]
Q8 = '[quantize.default]\nweight = { format = "fixed", width = 8, frac_width = 4 }\n'
CONFIG_CASES: dict[str, tuple[Edit, list[str], str]] = {
    "by_name a node the model lacks": (
        add("quantize.by_name.nope", "weight = { width = 8, frac_width = 4 }"),
        ["quantize", "--out", "qx"],
        r"quantize\.by_name\.nope",
    ),
    "by_name regex matching nothing": (
        add('quantize.by_name."re:^zzz$"', "weight = { width = 8, frac_width = 4 }"),
        ["quantize", "--out", "qx"],
        r"quantize\.by_name",
    ),
    "by_name a relu's weight": (
        add("quantize.by_name.seq_blocks_2", "weight = { width = 8, frac_width = 4 }"),
        ["quantize", "--out", "qx"],
        r"quantize\.by_name\.seq_blocks_2",
    ),
    "the finished study resumed with another space": (
        lambda t: add("search", 'study = "good"')(sub(W, "weight = [[8, 4], [6, 3]]")(t)),
        ["search", "-q"],
        r"--study",
    ),
    "compare sensitivity on a Pareto search": (
        lambda t: add("compare", 'strategies = ["tpe", "sensitivity"]')(
            sub(ACC, ACC + '\nmodel_size_bits = { direction = "minimize" }\ncombine = "pareto"')(t)
        ),
        ["compare", "-q"],
        r"compare\.strategies",
    ),
    "compare --strategies sensitivity on a Pareto search": (
        sub(ACC, ACC + '\nmodel_size_bits = { direction = "minimize" }\ncombine = "pareto"'),
        ["compare", "--strategies", "random,hawq", "-q"],
        r"--strategies",
    ),
    "cnn-digits on the user's 4-feature data": (
        lambda t: add("data", 'name = "@WORKDIR@/d.py:load"')(
            re.sub(r'checkpoint = ".*"\n', "", t.replace('"mlp-digits"', '"cnn-digits"'))
        ),
        ["summary"],
        r"data\.name",
    ),
    "sensitivity with a latency constraint": (
        lambda t: add("search.constraints", "latency_ms = { max = 10 }")(
            sub('name = "random"', 'name = "sensitivity"')(t)
        ),
        ["search", "-q"],
        r"search\.strategy",
    ),
    "by_type a relu's weight": (
        add("quantize.by_type.relu", "weight = { width = 8, frac_width = 4 }"),
        ["quantize", "--out", "qx"],
        r"quantize\.by_type\.relu\.weight",
    ),
    "by_type a kind no quantizer has": (
        add("quantize.by_type.conv3d", "weight = { width = 8, frac_width = 4 }"),
        ["quantize", "--out", "qx"],
        r"quantize\.by_type\.conv3d",
    ),
    "by_name an invalid regex": (
        add('quantize.by_name."re:["', "weight = { width = 8, frac_width = 4 }"),
        ["quantize", "--out", "qx"],
        r"quantize\.by_name",
    ),
    "block_fp block_dim past the tensor": (
        add(
            "quantize.default",
            'weight = { format = "block_fp", mantissa_width = 4, exponent_width = 4, '
            "block_size = 4, block_dim = 5 }",
        ),
        ["quantize", "--out", "qx"],
        r"quantize\.default\.weight",
    ),
    "block_fp block_dim past the tensor, by_type": (
        add(
            "quantize.by_type.linear",
            'weight = { format = "block_fp", mantissa_width = 4, exponent_width = 4, '
            "block_size = 4, block_dim = -3 }",
        ),
        ["quantize", "--out", "qx"],
        r"quantize\.by_type\.linear\.weight",
    ),
    "space by name, a node the model lacks": (
        sub(
            f"[{'search.space.choices.linear'}]",
            '[search.space]\nby = "name"\n[search.space.choices.nope]',
        ),
        ["search", "-q"],
        r"search\.space\.choices\.nope",
    ),
    "space choices for a kind the model lacks": (
        sub("[search.space.choices.linear]", "[search.space.choices.conv2d]"),
        ["search", "-q"],
        r"search\.space\.choices\.conv2d",
    ),
    "space block_dim past the tensor": (
        sub(
            W,
            'weight = [{ format = "block_fp", mantissa_width = 4, exponent_width = 4, '
            "block_size = 4, block_dim = 7 }]",
        ),
        ["search", "-q"],
        r"search\.space\.choices\.linear\.weight",
    ),
    "fidelity min_samples past the split": (
        add("search", 'fidelity = { method = "successive_halving", min_samples = 100000 }'),
        ["search", "-q"],
        r"search\.fidelity\.min_samples",
    ),
    "fidelity eta past the split": (
        add("search", 'fidelity = { method = "successive_halving", eta = 1000000 }'),
        ["search", "-q"],
        r"search\.fidelity\.eta",
    ),
    "objective top11_accuracy of 10 classes": (
        sub(ACC, 'top11_accuracy = { direction = "maximize" }'),
        ["search", "-q"],
        r"search\.objectives\.top11_accuracy",
    ),
    "constraint top20_accuracy of 10 classes": (
        add("search.constraints", "top20_accuracy = { min = 0.5 }"),
        ["search", "-q"],
        r"search\.constraints\.top20_accuracy",
    ),
    "recorded top11_accuracy of 10 classes": (
        add("search", 'metrics = ["accuracy", "top11_accuracy"]'),
        ["compare", "-q"],
        r"search\.metrics",
    ),
    "fidelity min_samples past eval_samples": (
        lambda t: add("search", 'fidelity = { method = "successive_halving", min_samples = 300 }')(
            add("data", "eval_samples = 100")(t)
        ),
        ["search", "-q"],
        r"search\.fidelity\.min_samples",
    ),
    "constraint on a metric a regression has": (
        add("search.constraints", "mse = { max = 0.1 }"),
        ["search", "-q"],
        r"search\.constraints\.mse",
    ),
    "objective a regression metric": (
        sub(ACC, 'mae = { direction = "minimize" }'),
        ["search", "-q"],
        r"search\.objectives\.mae",
    ),
    "recorded a regression metric": (
        add("search", 'metrics = ["accuracy", "mse"]'),
        ["compare", "-q"],
        r"search\.metrics",
    ),
    "constraint on an unknown metric": (
        add("search.constraints", '"\U0001f680" = { max = 0.1 }'),
        ["search", "-q"],
        r"search\.constraints",
    ),
    "objective twice through an alias": (
        sub(ACC, ACC + '\nacc = { direction = "maximize" }'),
        ["search", "-q"],
        r"search\.objectives",
    ),
    "objective weight 0": (
        sub(ACC, 'accuracy = { direction = "maximize", weight = 0 }'),
        ["search", "-q"],
        r"search\.objectives",
    ),
    "objective weight -1": (
        sub(ACC, 'accuracy = { direction = "maximize", weight = -1 }'),
        ["search", "-q"],
        r"search\.objectives",
    ),
    "objective weight nan": (
        sub(ACC, 'accuracy = { direction = "maximize", weight = nan }'),
        ["search", "-q"],
        r"search\.objectives",
    ),
    "objective weight inf": (
        sub(ACC, 'accuracy = { direction = "maximize", weight = inf }'),
        ["search", "-q"],
        r"search\.objectives",
    ),
    "objective weight -0.0": (
        sub(ACC, 'accuracy = { direction = "maximize", weight = -0.0 }'),
        ["search", "-q"],
        r"search\.objectives",
    ),
    "objective weight 1e309": (
        sub(ACC, 'accuracy = { direction = "maximize", weight = 1e309 }'),
        ["search", "-q"],
        r"search\.objectives",
    ),
    "objective weight true": (
        sub(ACC, 'accuracy = { direction = "maximize", weight = true }'),
        ["search", "-q"],
        r"search\.objectives",
    ),
    "objective weight '1'": (
        sub(ACC, 'accuracy = { direction = "maximize", weight = "1" }'),
        ["search", "-q"],
        r"search\.objectives",
    ),
    "all weights 0 in a weighted sum": (
        sub(
            ACC,
            'accuracy = { direction = "maximize", weight = 0.0 }\nmodel_size_bits = { direction = "minimize", weight = 0.0 }',
        ),
        ["search", "-q"],
        r"search\.objectives",
    ),
    "duplicate table": (lambda t: t + "[search]\nn_trials = 3\n", ["search", "-q"], r"\S+"),
    "duplicate key": (add("search", "n_trials = 3"), ["search", "-q"], r"\S+"),
    "emoji top-level key": (add("", '"\U0001f680" = 1'), ["search", "-q"], r"\S+"),
    "emoji table": (lambda t: t + '["\U0001f680"]\nx = 1\n', ["search", "-q"], r"\S+"),
    "unicode key in search": (add("search", '"n_trïals" = 3'), ["search", "-q"], r"search\."),
    "100000-character study": (
        add("search", f'study = "{"x" * 100_000}"'),
        ["search", "-q"],
        r"search\.study",
    ),
    "100000-character model name": (
        sub('name = "mlp-digits"', f'name = "{"m" * 100_000}"'),
        ["search", "-q"],
        r"model\.name",
    ),
    "5000 nested arrays": (add("", "deep = " + "[" * 5000 + "]" * 5000), ["search", "-q"], r"\S+"),
    "5000 nested inline tables": (
        add("", "deep = " + "{a = " * 5000 + "1" + "}" * 5000),
        ["search", "-q"],
        r"\S+",
    ),
    "300 nested tables": (
        lambda t: t + "[" + ".".join(["a"] * 300) + "]\nx = 1\n",
        ["search", "-q"],
        r"\S+",
    ),
    "n_trials 1e309": (
        sub("n_trials = 2", "n_trials = 1e309"),
        ["search", "-q"],
        r"search\.n_trials",
    ),
    "n_trials -0": (sub("n_trials = 2", "n_trials = -0"), ["search", "-q"], r"search\.n_trials"),
    "n_trials '8'": (sub("n_trials = 2", 'n_trials = "8"'), ["search", "-q"], r"search\.n_trials"),
    "n_trials 2.0": (sub("n_trials = 2", "n_trials = 2.0"), ["search", "-q"], r"search\.n_trials"),
    "n_trials 2**63": (
        sub("n_trials = 2", f"n_trials = {2**63 - 1}"),
        ["search", "-q"],
        r"search\.n_trials",
    ),
    "seed 1e309": (sub("seed = 0", "seed = 1e309"), ["search", "-q"], r"seed"),
    "seed '0'": (sub("seed = 0", 'seed = "0"'), ["search", "-q"], r"seed"),
    "seed 0x8000000000000000": (
        sub("seed = 0", "seed = 0x7fffffffffffffff"),
        ["search", "-q"],
        r"seed",
    ),
    "width '8'": (
        sub(W, 'weight = [["8", 4], [4, 2]]'),
        ["search", "-q"],
        r"search\.space\.choices\.linear\.weight",
    ),
    "width 8.0": (
        sub(W, "weight = [[8.0, 4], [4, 2]]"),
        ["search", "-q"],
        r"search\.space\.choices\.linear\.weight",
    ),
    "width 1e309": (
        sub(W, "weight = [[1e309, 4], [4, 2]]"),
        ["search", "-q"],
        r"search\.space\.choices\.linear\.weight",
    ),
    "width true": (
        sub(W, "weight = [[true, 4], [4, 2]]"),
        ["search", "-q"],
        r"search\.space\.choices\.linear\.weight",
    ),
    "quantize width '8'": (
        add("quantize.default", 'weight = { width = "8", frac_width = 4 }'),
        ["quantize", "--out", "qx"],
        r"quantize\.default\.weight",
    ),
    "quantize width -0": (
        add("quantize.default", "weight = { width = -0, frac_width = 0 }"),
        ["quantize", "--out", "qx"],
        r"quantize\.default\.weight",
    ),
    "timeout 1e309": (add("search", "timeout = 1e309"), ["search", "-q"], r"search\.timeout"),
    "timeout -0.0": (add("search", "timeout = -0.0"), ["search", "-q"], r"search\.timeout"),
    "constraint max nan": (
        add("search.constraints", "accuracy = { min = nan }"),
        ["search", "-q"],
        r"search\.constraints\.accuracy",
    ),
    "constraint max_ratio inf": (
        add("search.constraints", "bitops = { max_ratio = inf }"),
        ["search", "-q"],
        r"search\.constraints\.bitops",
    ),
    "constraint min above max": (
        add("search.constraints", "accuracy = { min = 0.9, max = 0.5 }"),
        ["search", "-q"],
        r"search\.constraints\.accuracy",
    ),
    "constraint an empty table": (
        add("search.constraints", "accuracy = {}"),
        ["search", "-q"],
        r"search\.constraints\.accuracy",
    ),
    "n_evaluations past n_trials": (
        add("search", "n_evaluations = 10"),
        ["search", "-q"],
        r"search\.n_evaluations|search\.n_trials",
    ),
    "storage malformed": (
        add("search", 'storage = "postgresql://:@:x/"'),
        ["search", "-q"],
        r"search\.storage",
    ),
    "storage a scheme alone": (
        add("search", 'storage = "mysql://"'),
        ["search", "-q"],
        r"search\.storage",
    ),
    "run_dir a file": (add("", 'run_dir = "good.toml"'), ["search", "-q"], r"run_dir"),
    "run_dir under a file": (add("", 'run_dir = "good.toml/runs"'), ["search", "-q"], r"run_dir"),
    "train.checkpoint a run directory": (
        add("train", 'checkpoint = "@WORKDIR@/runs/good"'),
        ["train", "--epochs", "1"],
        r"train\.checkpoint",
    ),
    "device cuda:-1": (add("search", 'device = "cuda:-1"'), ["search", "-q"], r"search\.device"),
    "device tpu": (add("search", 'device = "tpu"'), ["search", "-q"], r"search\.device"),
    "compare strategies empty list": (
        add("compare", "strategies = []"),
        ["compare", "-q"],
        r"compare\.strategies",
    ),
    "compare budgets past n_trials": (
        add("compare", "budgets = [1000]"),
        ["compare", "-q"],
        r"compare\.budgets",
    ),
    "compare budgets 0": (add("compare", "budgets = [0]"), ["compare", "-q"], r"compare\.budgets"),
    "compare seeds 0": (add("compare", "seeds = 0"), ["compare", "-q"], r"compare\.seeds"),
}

# name: (environment, command line, key)
ENV_CASES: dict[str, tuple[dict[str, str], list[str], str]] = {
    "QUANTSEARCH_STORAGE malformed": (
        {"QUANTSEARCH_STORAGE": "postgresql://u:p@:notaport/db"},
        ["search", "-c", "good.toml", "-q"],
        "--storage",
    ),
    "QUANTSEARCH_STORAGE garbage": (
        {"QUANTSEARCH_STORAGE": "\U0001f680"},
        ["search", "-c", "good.toml", "-q"],
        "--storage",
    ),
    "QUANTSEARCH_STORAGE sqlite memory": (
        {"QUANTSEARCH_STORAGE": "sqlite://"},
        ["worker", "-c", "good.toml"],
        "--storage",
    ),
    "QUANTSEARCH_STORAGE a folder": (
        {"QUANTSEARCH_STORAGE": "runs"},
        ["worker", "-c", "good.toml"],
        "--storage",
    ),
    "QUANTSEARCH_CACHE_DIR a file": (
        {"QUANTSEARCH_CACHE_DIR": "good.toml"},
        ["summary", "-c", "good.toml"],
        "QUANTSEARCH_CACHE_DIR",
    ),
}

# name: (how the config path is made in the case folder, key)
PATH_CASES: dict[str, Callable[[Path], Path]] = {}


def _folder(p: Path) -> Path:
    (p / "c.toml").mkdir()
    return p / "c.toml"


def _fifo(p: Path) -> Path:
    os.mkfifo(p / "c.toml")
    return p / "c.toml"


def _empty(p: Path) -> Path:
    (p / "c.toml").write_bytes(b"")
    return p / "c.toml"


def _binary(p: Path) -> Path:
    (p / "c.toml").write_bytes(bytes(range(256)) * 4)
    return p / "c.toml"


def _latin1(p: Path) -> Path:
    (p / "c.toml").write_bytes('seed = 0\n[search]\nstudy = "caf\xe9"\n'.encode("latin-1"))
    return p / "c.toml"


def _bom(p: Path) -> Path:
    (p / "c.toml").write_bytes(b"\xef\xbb\xbfseed = 0\n[search]\nn_trials = =\n")
    return p / "c.toml"


def _utf16(p: Path) -> Path:
    (p / "c.toml").write_bytes("seed = 0\n".encode("utf-16"))
    return p / "c.toml"


def _nul(p: Path) -> Path:
    (p / "c.toml").write_bytes(b"seed = 0\x00\n")
    return p / "c.toml"


def _dangling(p: Path) -> Path:
    (p / "c.toml").symlink_to(p / "gone.toml")
    return p / "c.toml"


def _unreadable(p: Path) -> Path:
    (p / "c.toml").write_text("seed = 0\n")
    (p / "c.toml").chmod(0)
    return p / "c.toml"


PATH_CASES = {
    "a folder": _folder,
    "a fifo": _fifo,
    "empty": _empty,
    "binary": _binary,
    "latin-1": _latin1,
    "a bad line after a BOM": _bom,
    "utf-16": _utf16,
    "a NUL byte": _nul,
    "a dangling link": _dangling,
}
if os.geteuid() != 0:  # root reads a file of mode 000
    PATH_CASES["unreadable"] = _unreadable

PY_MODEL = """import torch
from torch import nn


def build():
    layers = [nn.Linear(4, 3, bias=False), nn.ReLU(), nn.Linear(3, 2, bias=False)]
    return nn.Sequential(nn.Flatten(), *layers)
"""
PY_DATA = "import torch\n\ndef load():\n    g = torch.Generator().manual_seed(0)\n    return torch.randn(60, 4, generator=g), torch.arange(60) % 2\n"
USER = """seed = 0
[model]
name = "m.py:build"
checkpoint = "{ckpt}"
[data]
name = "d.py:load"
[search]
n_trials = 2
[search.strategy]
name = "random"
[search.space.choices.linear]
weight = [[8, 4], [4, 2]]
[search.objectives]
accuracy = {{ direction = "maximize" }}
"""
# configs of the user's bias-free model, each with one mistake (file name: what it is)
USER_BAD = {
    "u_bias_choice.toml": lambda t: t.replace("[4, 2]]", "[4, 2]]\nbias = [[8, 4], [4, 2]]"),
    "u_bias_quantize.toml": lambda t: (
        t + "[quantize.by_type.linear]\nbias = { width = 8, frac_width = 4 }\n"
    ),
    "u_flatten_choice.toml": lambda t: t.replace("choices.linear]", "choices.flatten]"),
    "u_no_data.toml": lambda t: t.replace('[data]\nname = "d.py:load"\n', ""),
    "u_bias_by_name.toml": lambda t: (
        t + '[quantize.by_name."1"]\nbias = { width = 8, frac_width = 4 }\n'
    ),
}
COMPARE = ["--strategies", "random", "--seeds", "1", "--trials", "2"]  # runs/good-compare
PRECHECKED = "[search.constraints]\nmodel_size_bits = { max_ratio = 0.001 }\n"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory, mlp_checkpoint: Path) -> Path:
    """runs/good (a finished study), runs/pre (every trial pre-checked infeasible), qout (a
    quantize output), the configs good.toml and q.toml (a [quantize] table), a user model."""
    d = tmp_path_factory.mktemp("corpus8")
    good = GOOD.format(ckpt=mlp_checkpoint.as_posix())
    (d / "good.toml").write_text(good)
    (d / "q.toml").write_text(good + Q8)
    (d / "pre.toml").write_text(good + PRECHECKED)
    minifloat = 'weight = { format = "minifloat", exponent_width = 4, mantissa_width = 3 }\n'
    (d / "mf.toml").write_text(good + "[quantize.default]\n" + minifloat)
    (d / "m.py").write_text(PY_MODEL)
    (d / "d.py").write_text(PY_DATA)
    finished_study(d)
    code = None
    from quantsearch.cli import main

    for args in (
        ["search", "-c", str(d / "pre.toml"), "--run-dir", str(d / "runs"), "-q"],
        ["quantize", "-c", str(d / "q.toml"), "--out", str(d / "qout")],
        ["compare", "-c", str(d / "good.toml"), "--run-dir", str(d / "runs"), "-q", *COMPARE],
    ):
        try:
            main(args)
        except SystemExit as exc:
            code = exc.code
        assert not code, args
    assert (d / "runs" / "pre" / "trials.csv").is_file()
    user = USER.format(ckpt=(d / "u.pt").as_posix())
    (d / "u.toml").write_text(user)
    try:
        main(["train", "-c", str(d / "u.toml"), "--epochs", "1", "--out", str(d / "u.pt")])
    except SystemExit as exc:
        assert not exc.code
    for name, edit in USER_BAD.items():
        (d / name).write_text(edit(user))
    return d


@pytest.fixture
def in_workdir(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The test runs in ``workdir``; it checks ``unchanged`` itself (an expected failure may
    add files), and what a case added is removed after it, so that the next case starts clean."""
    monkeypatch.chdir(workdir)
    had = set(workdir.rglob("*"))
    yield workdir
    for p in sorted(set(workdir.rglob("*")) - had, key=lambda p: len(p.parts), reverse=True):
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)


def _unchanged(folder: Path, before: str) -> None:
    assert digest(folder) == before, "a file of the folder was changed, added or removed"


def _check(code: int, err: str, key: str) -> None:
    assert "Traceback" not in err, err[-3000:]
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, (code, err[-3000:])
    assert FORM.match(lines[0]), lines[0][:600]
    assert re.match(rf"error: (?:{key})\S*: got ", lines[0]), lines[0][:600]
    assert len(lines[0]) < 1200, lines[0][:300]


@pytest.mark.parametrize("name", sorted(OPTION_CASES))
def test_options(name: str, in_workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args, key = OPTION_CASES[name]
    before = digest(in_workdir)
    if args[0] == "export":
        pytest.importorskip("qonnx" if "qonnx" in args else "hls4ml", reason="the export extra")
    code, err = run_cli(args, capsys)
    _check(code, err, key)
    _unchanged(in_workdir, before)


@pytest.mark.parametrize("name", sorted(CONFIG_CASES))
def test_configs(name: str, in_workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    edit, command, key = CONFIG_CASES[name]
    before = digest(in_workdir)
    # the config lies outside the folder (paths in it are relative to its own folder)
    text = edit((in_workdir / "good.toml").read_text()).replace("@WORKDIR@", in_workdir.as_posix())
    # a study of its own per case: one taken by mistake cannot answer the next
    bad = in_workdir.parent / f"{in_workdir.name}-bad" / (re.sub(r"\W+", "_", name) + ".toml")
    bad.parent.mkdir(exist_ok=True)
    bad.write_text(text)
    code, err = run_cli([command[0], "-c", str(bad), *command[1:]], capsys)
    _check(code, err, key)
    assert bad.read_text() == text
    _unchanged(in_workdir, before)


@pytest.mark.parametrize("name", sorted(ENV_CASES))
def test_environment(
    name: str, in_workdir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    env, args, key = ENV_CASES[name]
    before = digest(in_workdir)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    code, err = run_cli(args, capsys)
    _check(code, err, key)
    _unchanged(in_workdir, before)


@pytest.mark.parametrize("name", sorted(PATH_CASES))
def test_config_paths(
    name: str, in_workdir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = digest(in_workdir)
    path = PATH_CASES[name](tmp_path)
    code, err = run_cli(["search", "-c", str(path), "-q"], capsys)
    _check(code, err, "search" if name == "empty" else "--config")  # TOML: empty is a table
    _unchanged(in_workdir, before)
