#!/usr/bin/env bash
# Hand-built ResNet50 from scratch on numbered class folders (000_one/, 001_two/, ...): zoo splits 80/20.
set -euo pipefail
zoo finetune resnet50 --data "${1:?usage: $0 GESTURE_FOLDER}" --optimizer adam --lr 1e-3 --scheduler none \
    --epochs 30 --batch-size 32 --augment light "${@:2}"
