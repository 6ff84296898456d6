#!/usr/bin/env bash
# torchvision resnet18 on ants/bees, the PyTorch tutorial's two variants side by side.
# Without published weights on this machine, add --weights "" to both (train from random init).
set -euo pipefail
common=(--data hymenoptera --weights DEFAULT --optimizer sgd --lr 1e-3 --momentum 0.9 --weight-decay 0
        --scheduler step --step-size 7 --gamma 0.1 --epochs 25 --batch-size 4 --augment light)
zoo finetune tv:resnet18 "${common[@]}" --output runs/hymenoptera-full "$@"
zoo finetune tv:resnet18 "${common[@]}" --freeze backbone --output runs/hymenoptera-frozen "$@"
