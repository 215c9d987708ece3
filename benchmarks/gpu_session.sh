#!/usr/bin/env bash
# The GPU checks and benchmarks in one run, on a machine with a CUDA device. From the
# repository root, with quantsearch importable (an install, or PYTHONPATH=src):
#
#   bash benchmarks/gpu_session.sh OUTDIR
#
# Each step has its own time limit and writes OUTDIR/<step>.txt; a failing step does not stop
# the ones after it. Steps:
#   1. the CUDA tests: tests/search/test_cuda.py and the latency test's CUDA case;
#   2. benchmarks/bench_gpu.py: trial latency by CUDA events, trials/s, host transfers;
#   3. bench_population.py --quick and bench_search.py --only vs_float, which run on the GPU
#      because a search's evaluator takes device "auto";
#   4. the evaluation, search, comparison, model, CLI and report tests (not the slow or
#      PostgreSQL ones) with the device present, so "auto" runs their trials on CUDA
#      (pytest-xdist; those that need the export extra or optuna-dashboard fail without them).
set -u
out=${1:-gpu-results}
py=${PYTHON:-python3}
mkdir -p "$out"
export PYTHONUNBUFFERED=1

step() {  # step NAME SECONDS COMMAND...
    local name=$1 limit=$2
    shift 2
    local t0=$SECONDS
    # SIGINT first: pytest then still prints its summary of failures
    timeout -s INT -k 20 "$limit" "$@" >"$out/$name.txt" 2>&1
    local rc=$?
    echo "$name: rc=$rc in $((SECONDS - t0)) s" | tee -a "$out/steps.txt"
}

{
    nvidia-smi -L
    "$py" -c "import torch, optuna; print('torch', torch.__version__, 'cuda', torch.version.cuda, \
'optuna', optuna.__version__, torch.cuda.get_device_name())"
    nproc
} >"$out/machine.txt" 2>&1
cat "$out/machine.txt"

step cuda_tests 90 "$py" -m pytest -q -rfE -p no:cacheprovider \
    tests/search/test_cuda.py tests/metrics/test_latency.py
step bench_gpu 90 "$py" benchmarks/bench_gpu.py --repeats 100
step bench_population 60 "$py" benchmarks/bench_population.py --quick
step bench_vs_float 60 "$py" benchmarks/bench_search.py --only vs_float
jobs=$(($(nproc) > 2 ? $(nproc) - 2 : 1))
# one thread each: $jobs processes of a core's worth of torch threads each would thrash
step suite_on_cuda 210 env OMP_NUM_THREADS=1 "$py" -m pytest -q -rfE -p no:cacheprovider -n "$jobs" \
    -m "not slow and not postgres" tests/search tests/passes tests/metrics tests/compare \
    tests/formats tests/models tests/cli tests/report tests/test_user_models.py \
    tests/test_quantized.py tests/test_finetune.py tests/test_int_weights.py tests/test_train.py
tail -n 25 "$out"/*.txt
