#!/usr/bin/env bash
# Full throughput benchmark on a GPU machine (sizes up to 2^20 envs and 1024 seeds), in under 8 minutes.
#
#   benchmarks/gpu.sh OUTDIR                      # on the GPU machine, wheels carried in .whl/
#   benchmarks/gpu.sh OUTDIR --device cpu --quick  # the same script, tested on a CPU
#
# Writes throughput.json, throughput.md, the PNGs and log.txt to OUTDIR. The Python side stops adding
# sizes when its budget runs short; the outer timeout only guards against a hang.
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

# The GPU image lacks gymnax and gymnasium: install the carried pure-Python wheels beside the checkout.
if ! "$py" -c "import gymnax, gymnasium" 2>/dev/null; then
  "$py" -m pip install -q --no-index --no-deps --no-compile --target .site .whl/*.whl
  export PYTHONPATH=$PWD/.site:$PWD${PYTHONPATH:+:$PYTHONPATH}
fi
if command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv >"$out/nvidia-smi.csv" || true
fi
export PYTHONUNBUFFERED=1
# 460 s: the plan's 400 s budget plus the last item's overrun, inside the 8 minutes with start-up.
timeout 460 "$py" benchmarks/throughput.py --device "$device" --out "$out" "${extra[@]}" 2>&1 | tee "$out/log.txt"
