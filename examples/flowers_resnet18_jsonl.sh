#!/usr/bin/env bash
# Hand-built ResNet18 on flower photos listed in a .jsonl file ({"path": ..., "label": ...} per line), split 80/20.
set -euo pipefail
zoo finetune resnet18 --data "${1:?usage: $0 FLOWERS.jsonl}" --val-ratio 0.2 --optimizer adamw --lr 1e-3 \
    --weight-decay 0.05 --scheduler cosine --warmup-epochs 2 --epochs 30 --batch-size 64 "${@:2}"
