"""The fourth sweep of bad inputs: TOML values of the wrong type at every level, values at the
edges of their ranges (-0.0, 1e400, 10**12, widths 1 and 65), keys differing by case, a config
naming itself, files that are UTF-8 with a byte-order mark or UTF-16 without one; outputs that
are the user's own files, a search's run directory, ``-``, a FIFO; checkpoints of another
shape, with missing or unexpected keys, or a pickle that would run code; user datasets that are
empty, of one sample or whose ``__getitem__`` fails; MASE's HDF5 file with NaN features.

Each case: exit status 2, one ``error:`` line naming the key or option, no traceback, and every
file of the folder it runs in (the user's config, checkpoint, text file, a finished study in
``runs/good``) byte for byte as before.

What escaped before: ``train --out`` (and ``train.checkpoint``) replaced any file, the user's
config or a run's best.json included, with a checkpoint; ``compare --name`` of a search's run
directory wrote the comparison's report and images over the search's; ``quantize --out`` of a
search's run directory mixed its files with the search's; ``--out -`` wrote a file named ``-``,
``--study -`` and ``study = "-rf"`` made folders a shell reads as options; bidi overrides
(U+202E) and C1 controls passed in ``run_dir`` and every other string; a Dataset whose
``__getitem__`` raised below its own ``__len__`` was a traceback; NaN features in MASE's HDF5
file were trained on and searched (every metric of their rows NaN); a config with a byte-order
mark or in UTF-16 without one was "Invalid statement" or "Expected '='" (now says which);
``compare --name`` of a FIFO named ``--run-dir``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pickle
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import unicodedata
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch

from quantsearch.paths import CONTROL
from tests.cli.bad_input import ACC, GOOD, SP, W, case_folder, finished_study
from tests.cli.bad_input import add as _add
from tests.cli.bad_input import check_one_line as _check
from tests.cli.bad_input import run_cli as _run
from tests.cli.bad_input import sub as _sub

S, OPT = "search", r"search\.strategy\.options\."
SPW = re.escape(SP) + r"\.weight"

# name -> (edit of the good config, regex the error line must match after "error: ");
# run as `search -c CASE/good.toml --run-dir runs -q` (its stem names the finished study)
CONFIG_CASES: dict[str, tuple[Callable[[str], str], str]] = {
    # numbers: -0.0, 1e400 (inf to tomllib), tables and arrays where numbers go, past 2**31
    "seed -0.0": (
        _sub("seed = 0", "seed = -0.0"),
        r"^seed: got -0\.0, allowed: an integer in \[0, 4294967295\]$",
    ),
    "seed 1e400": (
        _sub("seed = 0", "seed = 1e400"),
        r"^seed: got inf, allowed: an integer in \[0, 4294967295\]$",
    ),
    "seed a table": (
        _sub("seed = 0", "seed = {}"),
        r"^seed: got \{\}, allowed: an integer in \[0, 4294967295\]$",
    ),
    "n_trials a table": (
        _sub("n_trials = 2", "n_trials = {}"),
        r"^search\.n_trials: got \{\}, allowed: an integer",
    ),
    "n_trials -0.0": (
        _sub("n_trials = 2", "n_trials = -0.0"),
        r"^search\.n_trials: got -0\.0, allowed: an integer",
    ),
    "n_trials 10**12": (
        _sub("n_trials = 2", "n_trials = 1000000000000"),
        r"^search\.n_trials: got 1000000000000, allowed: an integer in \[1, 2147483647\]$",
    ),
    "n_trials a date": (
        _sub("n_trials = 2", "n_trials = 1979-05-27"),
        r"^search\.n_trials: got datetime\.date\(1979, 5, 27\), allowed: an integer",
    ),
    "timeout -0.0": (
        _add(S, "timeout = -0.0"),
        r"^search\.timeout: got -0\.0, allowed: a finite number > 0 and <= 31536000$",
    ),
    "timeout 1e400": (
        _add(S, "timeout = 1e400"),
        r"^search\.timeout: got inf, allowed: a finite number > 0",
    ),
    "n_jobs true": (
        _add(S, "n_jobs = true"),
        r"^search\.n_jobs: got True, allowed: an integer in \[1, 1024\]$",
    ),
    "data.batch_size 0": (
        _add("data", "batch_size = 0"),
        r"^data\.batch_size: got 0, allowed: an integer in \[1, ",
    ),
    "data.batch_size 64.0": (
        _add("data", "batch_size = 64.0"),
        r"^data\.batch_size: got 64\.0, allowed: an integer",
    ),
    "data.batch_size 2**63-1": (
        _add("data", "batch_size = 9223372036854775807"),
        r"^data\.batch_size: got 9223372036854775807, allowed: an integer in \[1, 2147483647\]$",
    ),
    "data.calibration_samples 0": (
        _add("data", "calibration_samples = 0"),
        r"^data\.calibration_samples: got 0, allowed: an integer in \[1, ",
    ),
    "train.seed 2**32": (
        _add("train", "seed = 4294967296"),
        r"^train\.seed: got 4294967296, allowed: an integer in \[0, 4294967295\]$",
    ),
    "train.patience 0": (
        _add("train", "patience = 0"),
        r"^train\.patience: got 0, allowed: an integer in \[1, ",
    ),
    "compare.ground_truth_budget -1": (
        _add("compare", "ground_truth_budget = -1"),
        r"^compare\.ground_truth_budget: got -1, allowed: an integer in \[0, ",
    ),
    "compare.tolerance nan": (
        _add("compare", "tolerance = nan"),
        r"^compare\.tolerance: got nan, allowed: a finite number >= 0\.0$",
    ),
    "compare.shared_cache 1": (_add("compare", "shared_cache = 1"), r"^compare\.shared_cache"),
    "tpe n_startup_trials true": (
        _sub('name = "random"', 'name = "tpe"\noptions = { n_startup_trials = true }'),
        OPT + r"n_startup_trials: got True, allowed: an integer",
    ),
    "constraint max -0.0": (
        _add("search.constraints", "bitops = { max = -0.0 }"),
        r"^search\.constraints\.bitops\.max: got -0\.0, allowed: a bound > 0",
    ),
    "objective nan": (
        _sub(ACC, "accuracy = nan"),
        r"^search\.objectives\.accuracy\.weight: got nan, allowed: a finite number",
    ),
    # widths at the edges, a space with no choice left
    "width 65": (
        _sub(W, "weight = [[65, 4]]"),
        rf"^{SPW}\[0\]\.width: got 65, allowed: an integer in \[2, 32\] \(signed fixed point\)$",
    ),
    "width 1": (
        _sub(W, "weight = [[1, 0]]"),
        rf"^{SPW}\[0\]\.width: got 1, allowed: an integer in \[2, 32\]",
    ),
    "width 1e400": (
        _sub(W, "weight = [[1e400, 4]]"),
        rf"^{SPW}\[0\]: got \[inf, 4\], allowed: a \[width, frac",
    ),
    "width true": (
        _sub(W, "weight = [[true, 4]]"),
        rf"^{SPW}\[0\]\.width: got True, allowed: an integer$",
    ),
    "no choice left": (
        _sub(W, "weight = { width = [4], frac_width = [8] }"),
        rf"^{SPW}: got 1 choices, each with frac_width > width, allowed: at least one with "
        r"frac_width <= width \(no valid choice is left\)$",
    ),
    "a kind without roles": (
        lambda t: t.replace(f"[{SP}]\n{W}", f"[{SP}]"),
        rf"^{re.escape(SP)}: got no role's choices, allowed: choices for at least one of \[",
    ),
    # arrays where tables go, keys differing by case, a config that names itself
    "model an array of tables": (
        lambda t: t.replace("[model]", "[[model]]"),
        r"^model: got \[\{'name': 'mlp-digits', .*, allowed: a table$",
    ),
    "objectives an array of tables": (
        lambda t: t.replace("[search.objectives]", "[[search.objectives]]"),
        r"^search\.objectives: got \[\{'accuracy': .*\], allowed: a table$",
    ),
    "Seed": (
        _sub("seed = 0", "Seed = 0"),
        r"^Seed: got an unknown key, allowed: the top-level keys: \[.*'seed'",
    ),
    "[Model]": (
        lambda t: t.replace("[model]", "[Model]"),
        r"^Model: got an unknown key, allowed: the top-level keys: \[.*'model'",
    ),
    "strategy Random": (
        _sub('"random"', '"Random"'),
        r"^search\.strategy\.name: got 'Random', allowed: one of \['brute_force', ",
    ),
    "a quoted table name with a dot": (
        lambda t: t.replace("[search.objectives]", '["search.objectives"]'),
        r'^"search\.objectives": got an unknown key, allowed: the top-level keys: ',
    ),
    "an empty key": (
        _add(S, '"" = 3'),
        r'^search\."": got an unknown key, allowed: the keys of search: ',
    ),
    "a key with a non-ASCII letter": (
        _add(S, '"n_trïals" = 3'),
        r'^search\."n_trïals": got an unknown key, allowed: the keys of search: \[.*\'n_trials\'',
    ),
    "include itself": (
        _add("", 'include = "good.toml"'),
        r"^include: got an unknown key, allowed: the top-level keys: ",
    ),
    # names: bidi overrides and C1 controls anywhere, a leading '-'
    "run_dir with U+202E": (
        _add("", 'run_dir = "r\\u202eb"'),
        r"^run_dir: got 'r\\u202eb', allowed: a string without control characters \(NUL, "
        r"newline, tab, bidi overrides, \.\.\.\)$",
    ),
    "run_dir with U+0085": (_add("", 'run_dir = "r\\u0085"'), r"^run_dir: got 'r\\x85', allowed"),
    "model.name with U+2066": (
        _sub('name = "mlp-digits"', 'name = "mlp-digits\\u2066"'),
        r"^model\.name: got 'mlp-digits\\u2066', allowed: a string without control",
    ),
    # tables, lists and names of other kinds and cases than a key takes
    "fidelity min_samples 0": (
        _add(S, 'fidelity = { method = "successive_halving", min_samples = 0 }'),
        r"^search\.fidelity\.min_samples: got 0, allowed: an integer in \[1, 2147483647\]$",
    ),
    "fidelity confidence nan": (
        _add(S, 'fidelity = { method = "successive_halving", confidence = nan }'),
        r"^search\.fidelity\.confidence: got nan, allowed: a finite number$",
    ),
    "metrics an empty name": (
        _add(S, 'metrics = [""]'),
        r"^search\.metrics: got an unknown metric '', allowed: one of \[",
    ),
    "device a number": (_add(S, "device = 0"), r"^search\.device: got 0, allowed: a string$"),
    "space.by a number": (
        _add("search.space", "by = 1"),
        r"^search\.space\.by: got 1, allowed: a string$",
    ),
    "bias same_as_bias": (
        _add(SP, 'bias = "same_as_bias"'),
        rf"^{re.escape(SP)}\.bias: got 'same_as_bias', allowed: a list of choices or one of "
        r"\['same_as_data_in', ",
    ),
    "minifloat exponent_width 0": (
        _sub(W, 'weight = [{ format = "minifloat", exponent_width = 0, mantissa_width = 0 }]'),
        rf"^{SPW}\[0\]\.exponent_width: got 0, allowed: an integer in \[1, 8\]$",
    ),
    "block_size 16.0": (
        _sub(W, 'weight = [{ format = "block_fp", mantissa_width = 4, block_size = 16.0 }]'),
        rf"^{SPW}\[0\]\.block_size: got 16\.0, allowed: an integer$",
    ),
    "fp32 given a width": (
        _sub(W, 'weight = [{ format = "fp32", width = 8 }]'),
        rf"^{SPW}\[0\]\.width: got an unknown key, allowed: the keys of {SPW}\[0\]: \['format'\]$",
    ),
    "direction Maximize": (
        _sub('"maximize"', '"Maximize"'),
        r"^search\.objectives\.accuracy\.direction: got 'Maximize', allowed: one of \['maximize', 'minimize'\]$",
    ),
    "combine Pareto": (
        _add("search.objectives", 'combine = "Pareto"'),
        r"^search\.objectives\.combine: got 'Pareto', allowed: one of \['pareto', 'weighted_sum'\]$",
    ),
    "a bound with min and max": (
        _add("search.constraints", "accuracy = { min = 0.5, max = 0.9 }"),
        r"^search\.constraints\.accuracy: got \{'min': 0\.5, 'max': 0\.9\}, allowed: a table with exactly one of \[",
    ),
    "compare.budgets [0]": (
        _add("compare", "budgets = [0]"),
        r"^compare\.budgets: got \[0\], allowed: a list of integers in \[1, 2147483647\]$",
    ),
    "compare.strategies ['']": (
        _add("compare", 'strategies = [""]'),
        r"^compare\.strategies: got '', allowed: one of .*$",
    ),
    "study -rf": (
        _add(S, 'study = "-rf"'),
        r"^search\.study: got '-rf', allowed: a name of letters, digits, '-' \(not first\), '_' "
        r"and '\.', not a path$",
    ),
}

# name -> (line, table, regex): a [quantize] table, run as `quantize -c CASE/q.toml --out CASE/q`
QUANTIZE_CASES: dict[str, tuple[str, str, str]] = {
    "width 65": (
        "weight = { width = 65, frac_width = 4 }",
        "quantize.default",
        r"^quantize\.default\.weight\.width: got 65, allowed: an integer in \[2, 32\]",
    ),
    "width -0.0": (
        "weight = { width = -0.0, frac_width = 0 }",
        "quantize.default",
        r"^quantize\.default\.weight\.width: got -0\.0, allowed: an integer$",
    ),
    "skip 1": (
        "skip = 1",
        "quantize.default",
        r"^quantize\.default\.skip: got 1, allowed: true or false$",
    ),
    "frac_width AUTO": (
        'weight = { width = 8, frac_width = "AUTO" }',
        "quantize.default",
        r"^quantize\.default\.weight\.frac_width: got 'AUTO', allowed: an integer or 'auto'$",
    ),
    "a regex that does not compile": (
        "weight = { width = 8, frac_width = 4 }",
        'quantize.by_name."re:("',
        r'^quantize\.by_name\."re:\(": got \'\(\', an invalid regular expression',
    ),
    "a regex that matches nothing": (
        "weight = { width = 8, frac_width = 4 }",
        'quantize.by_name."re:^zzz$"',
        r"^quantize\.by_name\.\"re:\^zzz\$\": got '\^zzz\$', which matches no quantizable node",
    ),
    "by_type an array": (
        "by_type = [1]",
        "quantize",
        r"^quantize\.by_type: got \[1\], allowed: a table of tables$",
    ),
    "by_kind": (
        "x = 1",
        "quantize.by_kind",
        r"^quantize\.by_kind: got an unknown key, allowed: the keys of quantize: \[",
    ),
}

# name -> (the config file's bytes from the good config's text, regex)
FILE_CASES: dict[str, tuple[Callable[[str], bytes], str]] = {
    "UTF-8 with a byte-order mark": (
        lambda t: ("\ufeff" + t).encode(),
        r"^--config: got .*good\.toml, not valid TOML: it starts with a byte-order mark "
        r"\(U\+FEFF\), allowed: UTF-8 without one$",
    ),
    "UTF-16 without a byte-order mark": (
        lambda t: t.encode("utf-16-le"),
        r"^--config: got .*good\.toml, not valid TOML: it holds a NUL byte at offset 1 \(UTF-16 "
        r"or binary\?\), allowed: UTF-8 text$",
    ),
    "gzip": (
        lambda t: __import__("gzip").compress(t.encode(), mtime=0),
        r"^--config: got .*, not UTF-8 text \(byte 0x8b at offset 1\)",
    ),
    "a table twice": (
        lambda t: (t + "[model]\nname = 'x'\n").encode(),
        r"^--config: got .*, not valid TOML: Cannot declare \('model',\) twice",
    ),
}

# name -> (arguments, regex); run in the folder holding good.toml, q.toml, runs/good, mlp.pt,
# afile.txt, fifo (a FIFO), nothing (a link to nothing) and the checkpoints _checkpoints writes
ARG_CASES: dict[str, tuple[list[str], str]] = {
    # an output that is the user's file, a run's file or folder, '-'
    "train --out the config": (
        ["train", "-c", "good.toml", "--out", "good.toml"],
        r"^--out: got 'good\.toml', which is a file that is not a quantsearch checkpoint, allowed: a new "
        r"file name, or a checkpoint a previous `quantsearch train` wrote \(which is replaced\)$",
    ),
    "train --out a text file": (
        ["train", "-c", "good.toml", "--out", "afile.txt"],
        r"^--out: got 'afile\.txt', which is a file that is not a quantsearch checkpoint",
    ),
    "train --out a run's best.json": (
        ["train", "-c", "good.toml", "--out", "runs/good/best.json"],
        r"^--out: got 'runs/good/best\.json', which is a file that is not a quantsearch checkpoint",
    ),
    "train.checkpoint the config": (
        ["train", "-c", "into_self.toml"],
        r"^train\.checkpoint: got '.*into_self\.toml', which is a file that is not a quantsearch checkpoint",
    ),
    "train --out -": (["train", "-c", "good.toml", "--out", "-"], r"^--out: got '-', allowed: a"),
    "quantize --out a search's run directory": (
        ["quantize", "-c", "q.toml", "--out", "runs/good"],
        r"^--out: got 'runs/good', a run directory of search or compare \(it holds trials\.jsonl\), "
        r"allowed: a folder of the quantize output's own$",
    ),
    "compare --name a search's run directory": (
        ["compare", "-c", "good.toml", "-q", "--run-dir", "runs", "--name", "good"],
        r"^--name: got 'runs/good', a search's run directory \(it holds trials\.jsonl\), allowed: "
        r"another --name, a folder of the comparison's own$",
    ),
    "search into a folder with the user's report.md": (
        ["search", "-c", "good.toml", "-q", "--run-dir", "mine"],
        r"^--run-dir: got 'mine/good', which holds report\.md no `quantsearch search` wrote \(no "
        r"study\.journal or search_config\.json beside it\), allowed: a folder of the study's own",
    ),
    "compare into a folder with the user's report.html": (
        ["compare", "-c", "good.toml", "-q", "--run-dir", "mine", "--name", "notes"],
        r"^--name: got 'mine/notes', which holds report\.html no `quantsearch compare` wrote \(no "
        r"comparison\.json beside it\), allowed: another --name",
    ),
    "compare --name a FIFO": (
        ["compare", "-c", "good.toml", "-q", "--run-dir", ".", "--name", "fifo"],
        r"^--name: got 'fifo' \('fifo' is neither a file nor a folder \(a FIFO, a device\)\)",
    ),
    "compare --name -": (
        ["compare", "-c", "good.toml", "-q", "--name", "-"],
        r"^--name: got '-', allowed: a name of letters",
    ),
    "export OUT -": (
        ["export", "--to", "qonnx", "--from-run", "runs/good", "-"],
        r"^OUT: got '-', allowed: a folder \(hls4ml\) or a file \(qonnx\)$",
    ),
    "quantize --out -": (
        ["quantize", "--from-run", "runs/good", "--out", "-"],
        r"^--out: got '-', allowed: a folder, or a path to make one at$",
    ),
    "init -o -": (
        ["init", "--model", "m.py:build", "--data", "m.py:build", "-o", "-"],
        r"^--output: got '-', allowed: a file name$",
    ),
    "compare --run-dir -": (
        ["compare", "-c", "good.toml", "-q", "--run-dir", "-"],
        r"^--run-dir: got '-', allowed: a folder, or a path to make one at$",
    ),
    "search --run-dir -": (
        ["search", "-c", "good.toml", "-q", "--run-dir", "-"],
        r"^--run-dir: got '-', allowed: a folder, or a path to make one at$",
    ),
    "worker --run-dir -": (["worker", "-c", "good.toml", "--run-dir", "-"], r"^--run-dir: got '-'"),
    "compare --strategies with a trailing comma": (
        ["compare", "-c", "good.toml", "-q", "--strategies", "random,"],
        r"^--strategies: got 'random,', allowed: names between single commas$",
    ),
    "search --study -": (
        ["search", "-c", "good.toml", "-q", "--study", "-"],
        r"^--study: got '-', allowed: a name of letters, digits, '-' \(not first\)",
    ),
    "search --run-dir with U+202E": (
        ["search", "-c", "good.toml", "-q", "--run-dir", "r\u202e"],
        r"^--run-dir: got 'r\\u202e/good', allowed: a path without control characters",
    ),
    "train.checkpoint -": (["train", "-c", "to_dash.toml"], r"^train\.checkpoint: got '.*-', allo"),
    "--storage a link to nothing": (
        ["search", "-c", "good.toml", "-q", "--storage", "sqlite:///nothing", "--study", "s1"],
        r"^--storage: got 'nothing', a link to nothing, allowed: a database file or a new name$",
    ),
    "--storage the user's own SQLite database": (
        ["search", "-c", "good.toml", "-q", "--storage", "sqlite:///notes.db", "--study", "s2"],
        r"^--storage: got 'sqlite:///notes\.db', which holds tables of another application \(\['notes'\]\), "
        r"allowed: an Optuna study database or a new file$",
    ),
    # inputs that are '-', a link to nothing, a folder ("does not exist" before)
    "data.path a folder": (
        ["summary", "-c", "jsc_folder.toml"],
        r"^data\.path: got '.*folder', which is a folder, allowed: the JSC data file; get MASE's HDF5 file",
    ),
    "model.name a folder.py": (
        ["summary", "-c", "model_folder.toml"],
        r"^model\.name: got 'folder\.py:build', whose file 'folder\.py' is a folder in '.*', allowed: "
        r"file\.py:function naming a Python file$",
    ),
    "init --data a FIFO.py": (
        ["init", "--model", "m.py:build", "--data", "fifo.py:load", "-o", "i.toml"],
        r"^--data: got 'fifo\.py:\w+', whose file 'fifo\.py' is not a regular file, allowed: ",
    ),
    "search -c -": (
        ["search", "-c", "-", "-q"],
        r"^--config: got '-', which does not exist, allowed",
    ),
    "summary -c a link to nothing": (
        ["summary", "-c", "nothing"],
        r"^--config: got 'nothing', which is a link to nothing, allowed: a TOML file",
    ),
    "report -": (["report", "-"], r"^RUN_DIR: "),
    "quantize --from-run -": (
        ["quantize", "--from-run", "-"],
        r"^--from-run: got '-', which does not exist, allowed: a run",
    ),
    "finetune --from-run a folder": (
        ["finetune", "--from-run", "runs", "--epochs", "1"],
        r"^--from-run: got 'runs', which holds no search's results, allowed: a run directory written by "
        r"`quantsearch search` \(it holds best\.json or pareto\.json\)$",
    ),
    # checkpoints: keys missing or unexpected, a list, a whole pickled model, an empty file,
    # a pickle that would run code (weights_only refuses it: the marker file is never made)
    "a checkpoint missing a key": (
        ["summary", "-c", "good.toml", "--load", "missing_key.pt"],
        r"^--load: got checkpoint 'missing_key\.pt', which does not fit \(Missing "
        r"key\(s\) in state_dict: \"seq_blocks\.0\.weight\"\.\), allowed: a checkpoint of model "
        r"'mlp-digits' as built$",
    ),
    "a checkpoint with an unexpected key": (
        ["summary", "-c", "good.toml", "--load", "extra_key.pt"],
        r"^--load: got checkpoint 'extra_key\.pt', which does not fit \(Unexpected key\(s\) in "
        r"state_dict: \"extra\.weight\"\.\), allowed: a checkpoint of model 'mlp-digits' as built$",
    ),
    "a checkpoint of format_version 99": (
        ["summary", "-c", "good.toml", "--load", "v99.pt"],
        r"^--load: got 'v99\.pt', which has format_version 99, allowed: 1 or 2 \(a checkpoint of another "
        r"quantsearch version: train it again with this one\)$",
    ),
    "a checkpoint of format_version true": (
        ["search", "-c", "good.toml", "-q", "--load", "vtrue.pt"],
        r"^--load: got 'vtrue\.pt', which has format_version True, allowed: 1 or 2 ",
    ),
    "a checkpoint of integer weights": (
        ["summary", "-c", "good.toml", "--load", "int64.pt"],
        r"^--load: got checkpoint 'int64\.pt', whose 'seq_blocks\.0\.weight' holds torch\.int64 "
        r"values, allowed: a checkpoint that fits model 'mlp-digits' \(torch\.float32\)$",
    ),
    "a .pt holding a list": (
        ["summary", "-c", "good.toml", "--load", "a_list.pt"],
        r"^--load: got 'a_list\.pt', which is not a quantsearch checkpoint \(no state_dict\), allowed",
    ),
    "a .pt holding a whole model": (
        ["summary", "-c", "good.toml", "--load", "whole_model.pt"],
        r"^--load: got 'whole_model\.pt', which is not a quantsearch checkpoint \(torch\.load: "
        r"UnpicklingError: Weights only load failed",
    ),
    "an empty .pt": (
        ["summary", "-c", "good.toml", "--load", "empty.pt"],
        r"^--load: got 'empty\.pt', which is not a quantsearch checkpoint \(torch\.load: EOFError\)",
    ),
    "a pickle that runs code": (
        ["quantize", "-c", "q.toml", "--load", "evil.pt", "--out", "q"],
        r"^--load: got 'evil\.pt', which is not a quantsearch checkpoint \(torch\.load: UnpicklingError",
    ),
    "a checkpoint that runs code": (
        ["export", "--to", "qonnx", "-c", "q.toml", "--load", "evil_zip.pt", "e.onnx"],
        r"^--load: got 'evil_zip\.pt', which is not a quantsearch checkpoint \(torch\.load: Unpickling",
    ),
    # counts at the edges
    "worker --seed 2**32": (
        ["worker", "-c", "good.toml", "--seed", "4294967296"],
        r"^--seed: got 4294967296, allowed: an integer in the range 0<=x<=4294967295",
    ),
    "finetune --lr -0.0": (
        ["finetune", "--from-run", "runs/good", "--lr", "-0.0"],
        r"^--lr: got -0\.0, allowed: a number in the range 1e-10<=x<=10",
    ),
    "finetune --trial 10**12": (
        ["finetune", "--from-run", "runs/good", "--trial", "1000000000000"],
        r"^--trial: got 1000000000000, allowed: a trial number of this run \(0\.\.1\)$",
    ),
    "export --samples 0": (
        ["export", "--to", "qonnx", "--from-run", "runs/good", "--verify", "--samples", "0", "e"],
        r"^--samples: got 0, allowed: an integer in the range x>=1",
    ),
    "export --float-as fixed(65,16)": (
        ["export", "--to", "hls4ml", "--from-run", "runs/good", "--float-as", "fixed(65,16)", "e"],
        r"^--float-as: got 'fixed\(65,16\)', allowed: a fixed format whose width is an integer in \[2, 32\]",
    ),
    "summary --batch -1": (
        ["summary", "-c", "good.toml", "--batch", "-1"],
        r"^--batch: got -1, allowed: 1 to 2147483647$",
    ),
}

NET = "import torch.nn as nn\n\n\ndef build():\n    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))\n"
X = "import torch\n\nx = torch.randn(200, 4, generator=torch.Generator().manual_seed(0))\ny = torch.arange(200) % 3\n\n\n"
LIES = "class D(torch.utils.data.Dataset):\n    def __len__(self):\n        return 10\n\n    def __getitem__(self, i):\n        if i > 3:\n            raise IndexError(i)\n        return x[i], y[i]\n\n\ndef load():\n    return D()\n"

# name -> (d.py after X, regex); run as `train` of net.py:build (4 features, 3 outputs)
DATA_CASES: dict[str, tuple[str, str]] = {
    "a Dataset failing below its len": (
        LIES,
        r"^data\.name: got 'd\.py:load', which returned a Dataset with item 4 raising IndexError: 4, "
        r"allowed: an item for every index below its len\(\)$",
    ),
    "no samples": (
        "def load():\n    return x[:0], y[:0]\n",
        r"^data\.name: got 'd\.py:lo",
    ),
    "one sample": ("def load():\n    return x[:1], y[:1]\n", r"^data\.name: got 'd\.py"),
    "a negative label": (
        "def load():\n    z = y.clone()\n    z[3] = -1\n    return x, z\n",
        r"^data\.name: got 'd\.py:load', which returned a negative label \(-1\), allowed: class indices$",
    ),
    "more labels than samples": (
        "def load():\n    return x[:150], y\n",
        r"^data\.name: got 'd\.py:load', which returned 150 samples but 200 labels",
    ),
    "samples of the wrong dims": (
        "def load():\n    return x.reshape(200, 2, 2), y\n",
        r"^data\.name: got samples of shape \(2, 2\) \(torch\.float32\), which do not fit model 'net\.py",
    ),
    "a model instead of data": (
        "def load():\n    return torch.nn.Linear(4, 3)\n",
        r"^data\.name: got 'd\.py:load', which returned a Linear, allowed: a DataSplits",
    ),
}

# name -> (the body of an evaluate function f(model, batches), regex); run as a search of
# mlp-digits whose objective is its `score`
EVALUATE_CASES: dict[str, tuple[str, str]] = {
    "NaN on the float model": (
        "return {'score': float('nan')}",
        r"^metrics\.evaluate: returned score = nan for the unquantized model, allowed: finite "
        r"numbers \(every trial is measured against it\)$",
    ),
    "inf on the float model": (
        "return {'score': -float('inf')}",
        r"^metrics\.evaluate: returned score = -inf for the unquantized model",
    ),
    "an int past floats": (
        "return {'score': 10**400}",
        r"^evaluate function 'f' returned score = 1000000000.*; expected a real number$",
    ),
}

USER = """[model]
name = "net.py:build"
[data]
name = "d.py:load"
"""


class _RunsCode:
    """Pickled, it calls os.system: what torch.load without weights_only would run."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Callable[..., object], tuple[str]]:
        return (os.system, (f"touch '{self.marker}'",))


def _checkpoints(d: Path, good: Path) -> None:
    """Damaged or foreign checkpoints beside the good one."""
    from quantsearch.models import build_model

    payload = torch.load(good, weights_only=True)
    sd = payload["state_dict"]
    torch.save(
        {**payload, "state_dict": {k: v for k, v in sd.items() if k != next(iter(sd))}},
        d / "missing_key.pt",
    )
    torch.save({**payload, "state_dict": {**sd, "extra.weight": torch.ones(2)}}, d / "extra_key.pt")
    torch.save([1, 2, 3], d / "a_list.pt")
    ints = {k: v.round().long() if v.is_floating_point() else v for k, v in sd.items()}
    torch.save({**payload, "state_dict": ints}, d / "int64.pt")  # load_state_dict cast them
    torch.save({**payload, "format_version": 99}, d / "v99.pt")  # a later layout, read as this one
    torch.save({**payload, "format_version": True}, d / "vtrue.pt")
    torch.save(build_model("mlp-digits"), d / "whole_model.pt")
    (d / "empty.pt").write_bytes(b"")
    (d / "evil.pt").write_bytes(pickle.dumps(_RunsCode(d / "PWNED")))
    torch.save({**payload, "extra": _RunsCode(d / "PWNED")}, d / "evil_zip.pt")  # fmt: skip


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory, mlp_checkpoint: Path) -> Path:
    """A finished study in runs/good, the user's files, a FIFO and a link to nothing."""
    d = tmp_path_factory.mktemp("corpus4")
    (d / "mlp.pt").write_bytes(mlp_checkpoint.read_bytes())
    good = GOOD.format(ckpt=(d / "mlp.pt").as_posix())
    (d / "good.toml").write_text(good)
    (d / "q.toml").write_text(good + "[quantize.default]\nweight = { width = 8, frac_width = 4 }\n")
    (d / "into_self.toml").write_text(good + '[train]\ncheckpoint = "into_self.toml"\n')
    (d / "afile.txt").write_text("the user's notes\n")
    finished_study(d)
    _checkpoints(d, d / "mlp.pt")
    (d / "to_dash.toml").write_text(good + '[train]\ncheckpoint = "-"\n')
    (d / "jsc_folder.toml").write_text(
        '[model]\nname = "jsc-tiny"\n[data]\nname = "jsc"\npath = "folder"\n'
    )
    (d / "model_folder.toml").write_text(
        '[model]\nname = "folder.py:build"\n[data]\nname = "digits"\n'
    )
    (d / "m.py").write_text("import torch\n\n\ndef build():\n    return torch.nn.Linear(4, 2)\n")
    with contextlib.closing(sqlite3.connect(d / "notes.db")) as db:  # the user's own database
        db.execute("CREATE TABLE notes (text TEXT)")
        db.execute("INSERT INTO notes VALUES ('mine')")
        db.commit()
    (d / "folder").mkdir()
    for sub, name in (("good", "report.md"), ("notes", "report.html")):  # the user's own
        (d / "mine" / sub).mkdir(parents=True)
        (d / "mine" / sub / name).write_text("my notes\n")
    (d / "folder.py").mkdir()
    os.mkfifo(d / "fifo.py")
    os.mkfifo(d / "fifo")  # reading or writing it would block until the other end opened
    (d / "nothing").symlink_to(d / "no-such-file")
    return d


@pytest.fixture
def in_workdir(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.chdir(workdir)
    yield workdir
    assert not (workdir / "PWNED").exists(), "a pickle ran code"


def _checked(
    args: list[str], pattern: str, folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """One refusal, and every file under ``folder`` (the user's) as it was, byte for byte (a
    search refused at its baseline leaves a new run directory beside them)."""
    before = _files(folder)
    code, err = _run(args, capsys)
    _check(code, err, pattern)
    after = _files(folder)
    assert {p: after.get(p) for p in before} == before, "a file of the user's was changed"


def _files(folder: Path) -> dict[Path, str]:
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize("name", sorted(CONFIG_CASES))
def test_bad_config(name: str, in_workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    edit, pattern = CONFIG_CASES[name]
    cfg = case_folder(in_workdir, name) / "good.toml"  # same stem: it names the existing study
    cfg.write_text(edit((in_workdir / "good.toml").read_text()))
    _checked(["search", "-c", str(cfg), "--run-dir", "runs", "-q"], pattern, in_workdir, capsys)


@pytest.mark.parametrize("name", sorted(QUANTIZE_CASES))
def test_bad_quantize_table(
    name: str, in_workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    line, table, pattern = QUANTIZE_CASES[name]
    case = case_folder(in_workdir, name)
    (case / "q.toml").write_text(_add(table, line)((in_workdir / "good.toml").read_text()))
    args = ["quantize", "-c", str(case / "q.toml"), "--out", str(case / "q")]
    _checked(args, pattern, in_workdir, capsys)


@pytest.mark.parametrize("name", sorted(FILE_CASES))
def test_bad_config_file(name: str, in_workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    content, pattern = FILE_CASES[name]
    cfg = case_folder(in_workdir, name) / "good.toml"
    cfg.write_bytes(content((in_workdir / "good.toml").read_text()))
    _checked(["search", "-c", str(cfg), "--run-dir", "runs", "-q"], pattern, in_workdir, capsys)


@pytest.mark.parametrize("name", sorted(ARG_CASES))
def test_bad_argument(name: str, in_workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args, pattern = ARG_CASES[name]
    _checked(args, pattern, in_workdir, capsys)


@pytest.mark.parametrize("name", sorted(DATA_CASES))
def test_bad_user_data(name: str, in_workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    body, pattern = DATA_CASES[name]
    case = case_folder(in_workdir, name)
    (case / "net.py").write_text(NET)
    (case / "d.py").write_text(X + body)
    (case / "u.toml").write_text(USER)
    args = ["train", "-c", str(case / "u.toml"), "--epochs", "1", "--out", str(case / "o.pt")]
    _checked(args, pattern, in_workdir, capsys)


@pytest.mark.parametrize("name", sorted(EVALUATE_CASES))
def test_bad_evaluate_function(
    name: str, in_workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """NaN or inf on the float model was an internal error (a failed config's values are made
    from the baseline's: Optuna refused to store NaN), an int past floats an OverflowError."""
    body, pattern = EVALUATE_CASES[name]
    case = case_folder(in_workdir, name)
    (case / "ev.py").write_text(f"def f(model, batches):\n    {body}\n")
    text = _sub(ACC, 'score = { direction = "maximize" }')((in_workdir / "good.toml").read_text())
    (case / "ev.toml").write_text(text + '[metrics]\nevaluate = "ev.py:f"\n')
    args = ["search", "-c", str(case / "ev.toml"), "--run-dir", str(case / "runs"), "-q"]
    _checked(args, pattern, in_workdir, capsys)


def test_nan_features_in_mase_hdf5(
    in_workdir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """MASE's preprocessing keeps rows with NaN features (tests/data/test_jsc_referee.py checks
    the splits against pandas and scikit-learn byte for byte); the commands refuse them, as a
    user loader's. numpy's isnan is the referee of which rows and columns."""
    h5py = pytest.importorskip("h5py")
    import numpy as np

    from quantsearch.data.jsc_read import FEATURES, HDF5_KEY
    from tests.cli.test_bad_input_names import _jsc_table

    case = case_folder(in_workdir, "h5 NaN features")
    table = _jsc_table(200)
    for row, col in ((7, 3), (7, 5), (40, 5)):
        table[FEATURES[col]][row] = np.nan
    x = np.stack([table[c] for c in FEATURES], axis=1)
    rows, cols = (
        np.isnan(x).any(axis=1).sum(),
        [FEATURES[i] for i in np.nonzero(np.isnan(x).any(axis=0))[0]],
    )
    with h5py.File(case / "jets.h5", "w") as f:
        f[HDF5_KEY] = table
    (case / "j.toml").write_text(
        '[model]\nname = "jsc-tiny"\n[data]\nname = "jsc"\npath = "jets.h5"\n'
    )
    monkeypatch.setenv("QUANTSEARCH_CACHE_DIR", "")  # read the file, not a cache of it
    pattern = (
        rf"^data\.path: '.*jets\.h5' has {rows} row\(s\) with NaN features in "
        rf"{re.escape(str(cols))}, allowed: rows of numbers \(drop or fill the missing values"
    )
    _checked(["summary", "-c", str(case / "j.toml")], pattern, in_workdir, capsys)
    assert rows == 2 and cols == [FEATURES[3], FEATURES[5]]


def test_what_counts_as_a_control_character() -> None:
    """The refused characters are Unicode's controls (category Cc) and its explicit
    directional formatting characters (UAX #9: LRM, RLM, embeddings, overrides, isolates), as
    unicodedata, the referee, classifies them; letters of any script pass."""
    explicit = {"LRE", "RLE", "PDF", "LRO", "RLO", "LRI", "RLI", "FSI", "PDI"}
    for cp in range(0x3000):
        ch = chr(cp)
        want = (
            unicodedata.category(ch) == "Cc"
            or unicodedata.bidirectional(ch) in explicit
            or unicodedata.name(ch, "") in ("LEFT-TO-RIGHT MARK", "RIGHT-TO-LEFT MARK")
        )
        assert bool(CONTROL.search(ch)) == want, hex(cp)


# name -> (arguments, regex): files this user may not read, folders it may not write in; run
# by a user root is not (root reads and writes them all): nobody, through setpriv, when root
PERMISSION_CASES: dict[str, tuple[list[str], str]] = {
    "--config unreadable": (["summary", "-c", "no_read.toml"], r"^--config: got 'no_read\.toml' \(not readable\), allowed: a file$"),
    "--load unreadable": (["summary", "-c", "ok.toml", "--load", "ck.pt"], r"^--load: got 'ck\.pt' \(not readable\), allowed: a file$"),
    "model.checkpoint unreadable": (["summary", "-c", "ck.toml"], r"^model\.checkpoint: got '.*ck\.pt', which is not readable, allowed: a file this user may read$"),
    "data.path unreadable": (["summary", "-c", "j.toml"], r"^data\.path: JSC file '.*j\.csv' is not readable, allowed: a file this user may read$"),
    "model.name unreadable": (["summary", "-c", "m.toml"], r"^model\.name: got .*, whose import failed \(PermissionError"),
    "init --model unreadable": (["init", "--model", "m.py:build", "--data", "m.py:build", "-o", "i.toml"], r"^--model: got 'm\.py', not readable Python"),
    "train --out in a read-only folder": (["train", "-c", "ok.toml", "--out", "ro/x.pt"], r"^--out: got 'ro' \(folder 'ro' is not writable\), allowed: a folder this user may write in$"),
    "search --run-dir read-only": (["search", "-c", "ok.toml", "-q", "--run-dir", "ro"], r"^--run-dir: got 'ro/ok' \(folder 'ro' is not writable\)"),
}  # fmt: skip

# runs the cases in one process (one import of torch), each as `quantsearch ARGS` would
_RUNNER = """
import contextlib, io, json, sys
from quantsearch.cli import main
results = []
for args in json.loads(sys.argv[1]):
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            main(args)
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
    results.append([code, err.getvalue()])
print(json.dumps(results))
"""


@pytest.mark.skipif(
    os.geteuid() == 0 and shutil.which("setpriv") is None,
    reason="root reads and writes every file, and setpriv is not here to run as nobody",
)
def test_permissions(mlp_checkpoint: Path) -> None:
    """The kernel is the referee of what may be read or written: the cases run as a user
    (nobody, uid 65534, when the test runs as root) that it refuses."""
    d = Path(tempfile.mkdtemp(prefix="qs-perm-"))  # not under pytest's folder, which is 0700
    try:
        d.chmod(0o755)
        (d / "mlp.pt").write_bytes(mlp_checkpoint.read_bytes())
        ok = GOOD.format(ckpt=(d / "mlp.pt").as_posix())
        (d / "ok.toml").write_text(ok)
        (d / "no_read.toml").write_text(ok)
        (d / "ck.pt").write_bytes(mlp_checkpoint.read_bytes())
        (d / "ck.toml").write_text(GOOD.format(ckpt=(d / "ck.pt").as_posix()))
        (d / "j.csv").write_text("zlogz,class\n1,g\n")
        (d / "j.toml").write_text(
            '[model]\nname = "jsc-tiny"\n[data]\nname = "jsc"\npath = "j.csv"\n'
        )
        (d / "m.py").write_text(
            "import torch\n\n\ndef build():\n    return torch.nn.Linear(64, 10)\n"
        )
        (d / "m.toml").write_text('[model]\nname = "m.py:build"\n[data]\nname = "digits"\n')
        for name in ("no_read.toml", "ck.pt", "j.csv", "m.py"):
            (d / name).chmod(0)
        (d / "ro").mkdir(mode=0o555)
        (d / "ro").chmod(0o555)
        before = _files(d)
        names = sorted(PERMISSION_CASES)
        as_nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
        proc = subprocess.run(
            [*(as_nobody if os.geteuid() == 0 else []), sys.executable, "-c", _RUNNER,
             json.dumps([PERMISSION_CASES[n][0] for n in names])],
            cwd=d, capture_output=True, text=True, timeout=300, check=False,
            env={**os.environ, "HOME": str(d), "QUANTSEARCH_CACHE_DIR": ""},
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        for name, (code, err) in zip(names, json.loads(proc.stdout), strict=True):
            _check(code, err, PERMISSION_CASES[name][1])
        assert _files(d) == before  # root reads them all back: nothing changed, nothing new
    finally:
        for p in (d, *d.rglob("*")):
            if not p.is_symlink():
                p.chmod(0o755 if p.is_dir() else 0o644)
        shutil.rmtree(d)


def test_a_checkpoint_is_still_replaced(
    in_workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The refusal refuses only files that are no checkpoint: an earlier one is retrained."""
    out = case_folder(in_workdir, "retrain") / "m.pt"
    out.write_bytes((in_workdir / "mlp.pt").read_bytes())
    code, err = _run(["train", "-c", "good.toml", "--epochs", "1", "--out", str(out)], capsys)
    assert code == 0, err
    assert out.read_bytes() != (in_workdir / "mlp.pt").read_bytes()
    assert torch.load(out, weights_only=True)["metrics"]["epochs"] == 1


def test_the_corpus_is_large() -> None:
    cases = (CONFIG_CASES, QUANTIZE_CASES, FILE_CASES, ARG_CASES, DATA_CASES, EVALUATE_CASES)
    assert sum(map(len, cases)) >= 100
    assert os.sep not in "".join(CONFIG_CASES)  # names become folder names
