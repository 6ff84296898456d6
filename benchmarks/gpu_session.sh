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
stage 90 python -m pytest -q -m gpu tests/test_gpu.py
cd benchmarks
# 1 + 5: seed vs hand-tuned vs engine (compile warm-up apart from steady state, compiled graphs counted)
stage 140 python train_throughput.py --models resnet50 resnet152
# 4: resnet18_cifar to 94 % with examples/cifar10_fast.sh's settings (needs cifar10-jpg in .gpu-data)
stage 110 python cifar10_time_to_accuracy.py
# 2 + 8: real JPEGs vs the synthetic ceiling: decode-once cache + device augmentation, and no cache (gpu-decode)
stage 90 python real_data_throughput.py --models resnet50 --datasets food20 hymenoptera --pipeline auto gpu-decode
# 3: frozen resnet152 with strong augmentation vs the seeds' frozen loop
stage 50 python frozen_backbone.py --model resnet152 --data food20 --size 224 --batch-size 256
# 6: export parity against eager on CUDA with TF32 off (matmul precision stated in parity.json)
stage 40 python export_latency.py --models resnet50 --epochs 1 --runs 10 --reference-device cuda
# 7: the input pipeline alone (data-wait share is in every engine run's metrics.jsonl)
stage 20 python data_loading.py --datasets food20
