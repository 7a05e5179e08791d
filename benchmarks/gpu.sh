#!/usr/bin/env bash
# Issue 16 on one GPU, in under 8 minutes: env steps/s of the default preset from 1 seed up to the most
# runs the memory planner fits on the device, with its update-only and env-only bounds; XLA:GPU command
# buffers (with WHILE and CONDITIONAL) as a measured option; `cartpole-jax train --seeds 1024` timed as a
# user runs it; host-synchronising control flow counted in the GPU-compiled programs.
#
#   CARTPOLE_JAX_COMMIT=$(git rev-parse --short HEAD) benchmarks/gpu.sh OUTDIR   # on the GPU machine
#   benchmarks/gpu.sh OUTDIR --device cpu --quick                                # the same script, tested on a CPU
#
# Writes scaling.json, scaling.md, scaling.png, control_flow.json, log.txt and nvidia-smi.csv to OUTDIR
# (6 files: the device tool brings back at most 8). Every part runs in its own process under one time
# budget (benchmarks/throughput.py --scaling): parts that no longer fit are skipped and listed as such;
# the outer timeout only guards against a hang. The older suite (env sizes to 2^20, purejaxrl, the
# Python-loop baseline) is `python benchmarks/throughput.py --device gpu`.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ $# -lt 1 || $1 == -* ]]; then
  echo "usage: benchmarks/gpu.sh OUTDIR [--device cpu|gpu] [--quick]" >&2
  exit 2
fi
out=$1
shift
device=gpu
extra=()
while [[ $# -gt 0 ]]; do
  case $1 in
    --device) device=$2; shift 2 ;;
    --quick) extra+=(--quick); shift ;;
    *) echo "gpu.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
py=${PYTHON:-python3}
mkdir -p "$out"

# The GPU image lacks gymnax (the env's physics come from it) and gymnasium: install the carried
# pure-Python wheels (/work/shared/device-wheels, copied to .whl/ and carried) beside the checkout.
if ! "$py" -c "import gymnax, gymnasium" 2>/dev/null; then
  if ! compgen -G ".whl/*.whl" >/dev/null; then
    echo "gpu.sh: gymnax/gymnasium are missing and .whl/ holds no wheels to install them from" >&2
    exit 2
  fi
  "$py" -m pip install -q --no-index --no-deps --no-compile --target .site .whl/*.whl
fi
export PYTHONPATH=$PWD/.site:$PWD${PYTHONPATH:+:$PYTHONPATH}
if command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv >"$out/nvidia-smi.csv" || true
fi
export PYTHONUNBUFFERED=1
# 465 s: the plan's 440 s budget plus the report and the last child's kill, inside the 8 minutes with start-up.
timeout 465 "$py" benchmarks/throughput.py --scaling --device "$device" --out "$out" "${extra[@]}" 2>&1 | tee "$out/log.txt"
