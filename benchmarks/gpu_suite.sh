#!/usr/bin/env bash
# Every GPU figure of simlearn in one run, then one markdown table of them all.
#
#   bash benchmarks/gpu_suite.sh                 # on the GPU machine, from the repository root
#   bash benchmarks/gpu_suite.sh --cpu           # the same steps, small sizes, on the CPU
#   bash benchmarks/gpu_suite.sh --out TABLE.md  # also write the table there (or SUITE_TABLE=...)
#
# Needs Python with torch, torchvision, numpy, pandas, scikit-learn; nothing is installed and
# nothing imports dvc, mlflow or great-expectations. Steps, most important first; each has its
# own wall-clock limit, and the whole suite a budget (SUITE_BUDGET seconds, 450 on the GPU) so
# that one hang cannot eat the machine's time: a step that would start past the budget is
# skipped and says so.
#   env        python, torch, device
#   imports    the simlearn modules the benchmarks use import no dvc/mlflow/GX/pyyaml
#   simclr     ResNet-18 CIFAR stem, 32x32, batch 512, images/s eager (fp32, bf16, bf16 +
#              channels-last, + deterministic kernels), augmentation share  (bench_simclr.py)
#   train      metric-learning samples/s, bf16 off and on                      (bench_train.py)
#   retrieval  exact retrieval metrics, N = 10,000 and 100,000, on the device  (bench_retrieval.py)
#   augment    the views of one 512x3x32x32 batch                              (bench_augment.py)
#   pytest     pytest -m gpu on the test files that have GPU tests
#   stereo     benchmarks/bench_stereo.py, when it exists
#   compiled   the simclr step under torch.compile (last: compiling takes the longest)
# With --cpu, every Python step except pytest runs through benchmarks/gpu_image.py, which
# hides every package the GPU machine does not have (SUITE_NO_GUARD=1 turns that off).
# pytest: when it is not installed, the step says "pytest not installed"; to have it, install
# it somewhere and point SUITE_PYTEST_PATH there (default: venv/suite_pytest when present),
# e.g. `pip install --target venv/suite_pytest pytest` (pure-Python wheels).
set -u
cd "$(dirname "$0")/.." || exit 1

CPU=0
TABLE="${SUITE_TABLE:-}"
while [ $# -gt 0 ]; do
  case "$1" in
    --cpu) CPU=1 ;;
    --out) shift; TABLE="${1:-}" ;;
    -h|--help) sed -n '2,27p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1 (allowed: --cpu, --out PATH)" >&2; exit 2 ;;
  esac
  shift
done

PY="${PYTHON:-$(command -v python || command -v python3)}"
export PYTHONPATH="src${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
WORK="$(mktemp -d "${TMPDIR:-/tmp}/gpu_suite.XXXXXX")"
RESULTS="$WORK/results.jsonl"
: > "$RESULTS"
if [ "$CPU" = 1 ]; then
  DEV=cpu
  BUDGET="${SUITE_BUDGET:-1800}"
  GUARD=("$PY" benchmarks/gpu_image.py)
  [ "${SUITE_NO_GUARD:-0}" = 1 ] && GUARD=("$PY")
else
  DEV=cuda
  BUDGET="${SUITE_BUDGET:-450}"
  GUARD=("$PY")
fi
START=$(date +%s)
DEADLINE=$((START + BUDGET))
FAILED=0

status() {  # step, status, seconds
  "$PY" benchmarks/suite_results.py status "$RESULTS" "$1" "$2" "$3"
}

# run_step NAME LIMIT_S CMD...: runs CMD under a wall-clock limit (never past the budget),
# shows its output, records its status
run_step() {
  local name="$1" limit="$2"
  shift 2
  local now left t0 rc secs log="$WORK/$name.log"
  now=$(date +%s)
  left=$((DEADLINE - now))
  echo
  echo "=== $name ($(date -u +%H:%M:%S) UTC, limit ${limit} s, budget left ${left} s)"
  echo "+ $*"
  if [ "$left" -lt 10 ]; then
    echo "skipped: suite budget of ${BUDGET} s spent"
    status "$name" "skipped: suite budget of ${BUDGET} s spent" 0
    return
  fi
  [ "$limit" -gt "$left" ] && limit=$left
  t0=$(date +%s.%N)
  timeout --kill-after=10 "$limit" "$@" > "$log" 2>&1
  rc=$?
  secs=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
  cat "$log"
  "$PY" benchmarks/suite_results.py note "$RESULTS" "$name" "$log"
  if [ "$rc" = 0 ]; then
    status "$name" ok "$secs"
  elif [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
    status "$name" "timed out after ${limit} s" "$secs"
    FAILED=1
  else
    local last
    last=$(grep -v '^\s*$' "$log" | tail -n 1 | tr '|' '/' | cut -c1-150)
    status "$name" "failed (rc $rc): $last" "$secs"
    FAILED=1
  fi
}

skip_step() {  # name, why
  echo
  echo "=== $1: skipped: $2"
  status "$1" "skipped: $2" 0
}

# --------------------------------------------------------------------------------- steps
if [ "$CPU" = 1 ]; then
  TRAIN_ARGS=(--device cpu --epochs 2 --n 640 --width 8 --threads 1)
  RETRIEVAL_ARGS=(--device cpu --skip-compare --large-n 5000)
  AUGMENT_ARGS=(--device cpu --batch 64 --repeat 3)
  SIMCLR_ARGS=(--device cpu --batch 16 --n-images 256 --steps 2 --warmup 1 --threads 1)
  SIMCLR_EAGER=eager-fp32  # off CUDA autocast is off, as in the engine: one variant says it all
  SIMCLR_COMPILED_ARGS=("${SIMCLR_ARGS[@]}")
else
  TRAIN_ARGS=(--device cuda --epochs 3 --n 12000)
  RETRIEVAL_ARGS=(--device cuda --n 10000 --large-n 100000)
  AUGMENT_ARGS=(--device cuda --batch 512 --repeat 20)
  SIMCLR_ARGS=(--device cuda --batch 512 --steps 30 --warmup 5)
  SIMCLR_EAGER=eager-fp32,eager-bf16,eager-bf16-cl,eager-bf16-cl-ahead,eager-bf16-cl-det
  SIMCLR_COMPILED_ARGS=(--device cuda --batch 512 --steps 30 --warmup 3)
fi

run_step env 60 "${GUARD[@]}" -c "
import platform, torch, torchvision, numpy, pandas, sklearn
print('python', platform.python_version(), '| torch', torch.__version__, '| torchvision',
      torchvision.__version__, '| numpy', numpy.__version__, '| pandas', pandas.__version__,
      '| scikit-learn', sklearn.__version__)
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    print('cuda', torch.version.cuda, '|', p.name, '|', round(p.total_memory / 2**30), 'GiB')
elif '$DEV' == 'cuda':
    raise SystemExit('no CUDA device visible to torch')
"

run_step imports 120 "${GUARD[@]}" -c "
import sys
import simlearn.augment, simlearn.losses, simlearn.models, simlearn.evaluation.retrieval
import simlearn.engine, simlearn.tasks.metric, simlearn.tasks.simclr
bad = sorted({m.split('.')[0] for m in sys.modules} & {'dvc', 'mlflow', 'great_expectations', 'yaml'})
if bad:
    raise SystemExit(f'the benchmarks import {bad}: not on the GPU image')
print('no dvc, mlflow, great_expectations or yaml imported')
"

run_step simclr 150 "${GUARD[@]}" benchmarks/bench_simclr.py "${SIMCLR_ARGS[@]}" \
  --variants "$SIMCLR_EAGER" --json "$RESULTS" --step-name simclr

run_step train 120 "${GUARD[@]}" benchmarks/bench_train.py "${TRAIN_ARGS[@]}" \
  --json "$RESULTS" --step-name train

run_step retrieval 150 "${GUARD[@]}" benchmarks/bench_retrieval.py "${RETRIEVAL_ARGS[@]}" \
  --json "$RESULTS" --step-name retrieval

run_step augment 60 "${GUARD[@]}" benchmarks/bench_augment.py "${AUGMENT_ARGS[@]}" \
  --json "$RESULTS"

PYTEST_PATH="${SUITE_PYTEST_PATH:-venv/suite_pytest}"
PYTEST_ENV=()
[ -d "$PYTEST_PATH" ] && PYTEST_ENV=(env "PYTHONPATH=$PYTHONPATH:$PYTEST_PATH")
if ! "${PYTEST_ENV[@]}" "$PY" -c "import pytest" > /dev/null 2>&1; then
  skip_step pytest "pytest not installed (see SUITE_PYTEST_PATH in benchmarks/gpu_suite.sh)"
else
  mapfile -t GPU_TESTS < <(grep -rlE "mark\.gpu|pytest\.mark\.gpu" tests --include='test_*.py' | sort)
  if [ "${#GPU_TESTS[@]}" = 0 ]; then
    skip_step pytest "no test file has a gpu marker"
  else
    # only the files with GPU tests: the others may import what the GPU image lacks
    run_step pytest 120 "${PYTEST_ENV[@]}" "$PY" -m pytest -m gpu -q -p no:cacheprovider \
      "${GPU_TESTS[@]}"
  fi
fi

if [ -f benchmarks/bench_stereo.py ]; then
  STEREO_JSON=()
  grep -q -- "--json" benchmarks/bench_stereo.py && STEREO_JSON=(--json "$RESULTS")
  # the KITTI-size synthetic pair: the GPU machine has no scikit-image, hence no motorcycle
  run_step stereo 120 "${GUARD[@]}" benchmarks/bench_stereo.py --device "$DEV" --synthetic "${STEREO_JSON[@]}"
  if [ "${#STEREO_JSON[@]}" = 0 ] && [ -f "$WORK/stereo.log" ]; then
    "$PY" - "$RESULTS" "$WORK/stereo.log" <<'EOF'
import sys
sys.path.insert(0, "benchmarks")
from suite_results import append
lines = [x.strip().replace("|", "/") for x in open(sys.argv[2]) if x.strip()]
for line in lines[-3:]:
    append(sys.argv[1], "stereo", "bench_stereo.py output", "see log", "", line[:160])
EOF
  fi
else
  skip_step stereo "benchmarks/bench_stereo.py does not exist yet"
fi

if [ "$CPU" = 1 ] && [ "${SUITE_CPU_COMPILE:-0}" != 1 ]; then
  skip_step compiled "--cpu: torch.compile is measured on the GPU (SUITE_CPU_COMPILE=1 to try)"
else
  run_step compiled 300 "${GUARD[@]}" benchmarks/bench_simclr.py "${SIMCLR_COMPILED_ARGS[@]}" \
    --variants compiled-bf16-cl --json "$RESULTS" --step-name compiled
fi

# --------------------------------------------------------------------------------- table
echo
echo "## simlearn GPU suite ($([ "$CPU" = 1 ] && echo "--cpu, small sizes" || echo "$DEV")), $(date -u +%Y-%m-%dT%H:%M:%SZ), $(( $(date +%s) - START )) s"
echo
if [ -n "$TABLE" ]; then
  "$PY" benchmarks/suite_results.py render "$RESULTS" "$TABLE"
else
  "$PY" benchmarks/suite_results.py render "$RESULTS"
fi
rm -rf "$WORK"
exit "$FAILED"
