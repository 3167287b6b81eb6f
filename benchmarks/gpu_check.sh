#!/usr/bin/env bash
# The GPU check, in one go on a machine with an NVIDIA GPU (about 6 minutes on one GPU):
#
#   1. a virtual environment with the package, its test and export extras and the gpu
#      extra (onnxruntime-gpu in place of onnxruntime, tensorrt);
#   2. the cuda tests (pytest -m cuda: an AMP training step, fp16/TensorRT/ONNX Runtime
#      within the accuracy budget, the TensorRT engine cache, an NCCL DDP start, the node
#      on CUDA);
#   3. the inference benchmark on CUDA: DNA-Depth-B0, -B1 and the Monodepth2-architecture
#      baseline in fp32 and fp16 on eager PyTorch, TensorRT and ONNX Runtime;
#   4. the accuracy-budget table of the shipped checkpoint on CUDA.
#
# Results go to $OUT if set, else to gpu_check_results/: environment.txt, cuda_tests.txt,
# inference_cuda.md, precision_cuda.md. Without a GPU it says so and exits 0 after writing
# environment.txt (nothing else here can run without one).
#
#   bash benchmarks/gpu_check.sh                 # VENV=.venv-gpu by default
#   OUT=/tmp/gpu VENV=.venv bash benchmarks/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."

RESULTS=${OUT:-gpu_check_results}
VENV=${VENV:-.venv-gpu}
PYTHON=${PYTHON:-python3}
mkdir -p "$RESULTS"
started=$SECONDS

log() { echo "[gpu_check $((SECONDS - started))s] $*"; }

{
  echo "date: $(date -u +%FT%TZ)"
  echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null \
    || echo "nvidia-smi: not found (no NVIDIA driver)"
} >"$RESULTS/environment.txt"

if ! nvidia-smi >/dev/null 2>&1; then
  log "no NVIDIA GPU here: nothing to check (see $RESULTS/environment.txt)"
  exit 0
fi

if [ ! -x "$VENV/bin/python" ]; then
  log "creating $VENV"
  "$PYTHON" -m venv "$VENV" || { log "cannot create $VENV"; exit 1; }
fi
# shellcheck disable=SC1091
. "$VENV/bin/activate"
pip_install() { python -m pip install --disable-pip-version-check -q "$@" >>"$RESULTS/pip.log" 2>&1; }
log "installing the package with the test, export and gpu extras (log: $RESULTS/pip.log)"
if ! pip_install torch==2.14.1 torchvision==0.29.1 || ! pip_install -e ".[test,export]"; then
  log "pip install failed (see $RESULTS/pip.log)"; exit 1
fi
# onnxruntime and onnxruntime-gpu install the same module: keep only the GPU build.
python -m pip uninstall -y -q onnxruntime >>"$RESULTS/pip.log" 2>&1
if ! pip_install -e ".[test,export,gpu]"; then
  log "the gpu extra did not install (see $RESULTS/pip.log); continuing with what is there"
fi
if ! python -c "import rclpy" 2>/dev/null; then
  pip_install ros-rclpy ros-sensor-msgs ros-std-msgs ros-geometry-msgs ros-nav-msgs ros-diagnostic-msgs \
    ros-rmw-fastrtps-cpp || log "ROS wheels did not install: the node test will fail"
fi
python - >>"$RESULTS/environment.txt" 2>&1 <<'EOF'
import importlib.util, torch
print("torch", torch.__version__, "cuda", torch.version.cuda, "device", torch.cuda.get_device_name(0))
for name in ("tensorrt", "onnxruntime", "openvino", "nncf"):
    spec = importlib.util.find_spec(name)
    version = __import__(name).__version__ if spec else "not installed"
    print(name, version)
import onnxruntime
print("onnxruntime providers", onnxruntime.get_available_providers())
EOF

export DNA_DEPTH_CACHE_DIR="$RESULTS/cache"  # engines are built once per run and reused by the steps below
status=0
log "cuda tests"
timeout 300 python -m pytest -q -m cuda -p no:cacheprovider test/test_cuda.py >"$RESULTS/cuda_tests.txt" 2>&1 \
  || { status=1; log "cuda tests failed (see $RESULTS/cuda_tests.txt)"; }
tail -n 3 "$RESULTS/cuda_tests.txt"

log "inference benchmark on CUDA"
timeout 150 python benchmarks/inference.py --device cuda --models b0,b1,monodepth2 --rounds 30 --no-scaling \
  >"$RESULTS/inference_cuda.md" 2>"$RESULTS/inference_cuda.log" \
  || { status=1; log "inference benchmark failed (see $RESULTS/inference_cuda.log)"; }

log "accuracy budget on CUDA (shipped checkpoint)"
timeout 90 python benchmarks/precision_accuracy.py --device cuda --sequences 1 --frames 4 --rounds 20 \
  >"$RESULTS/precision_cuda.md" 2>"$RESULTS/precision_cuda.log" \
  || { status=1; log "precision benchmark failed (see $RESULTS/precision_cuda.log)"; }

rm -rf "$RESULTS/cache"  # engines: large, machine-specific
log "done in $((SECONDS - started)) s; results in $RESULTS"
exit $status
