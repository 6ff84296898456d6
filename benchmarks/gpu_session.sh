#!/usr/bin/env bash
# Everything a session on the GPU machine runs, in one call within its 10-minute command limit:
# install (no registry there), the CUDA tests, then the GPU benchmarks, each under its own timeout
# so one slow stage cannot eat the others. Results go to $OUT when the device tool sets it.
#
# Prepare (here, before the call): copy the data into the git-ignored .gpu-data/ folder and carry it.
# At most 64 MiB travel with the repository: cifar10-jpg (57 MB) alone, or food20 (21 MB) with
# hymenoptera (44 MB) cut down; a stage whose data did not travel fails alone and the others go on.
#   mkdir -p .gpu-data && cp -r ../shared/data/cifar10-jpg .gpu-data/
# then run:  bash benchmarks/gpu_session.sh      (device tool: carry [".gpu-data"])
set -uo pipefail
cd "$(dirname "$0")/.."
pip install -q --no-deps --no-build-isolation -e . -e plugins/zoo-example
export ZOO_DATA_ROOT="${ZOO_DATA_ROOT:-$PWD/.gpu-data}" ZOO_TEST_DATA="${ZOO_TEST_DATA:-$PWD/.gpu-data}"
export ZOO_BENCH_RESULTS="${OUT:-$PWD/benchmarks/results}"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
stage() { local limit=$1; shift; echo "== $* (limit ${limit}s)"; timeout "$limit" "$@" || echo "== FAILED or timed out: $*"; }
stage 120 python -m pytest -q -m gpu tests/test_gpu.py
cd benchmarks
stage 150 python train_throughput.py --models resnet50 resnet152
stage 120 python cifar10_time_to_accuracy.py
stage 90 python real_data_throughput.py --models resnet50 --datasets food20 --pipeline auto workers
stage 60 python frozen_backbone.py --model resnet152 --data food20 --size 224 --batch-size 256
stage 30 python data_loading.py --datasets food20
