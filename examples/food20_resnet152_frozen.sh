#!/usr/bin/env bash
# torchvision resnet152, published ImageNet weights, frozen backbone, new 20-class head, strong augmentation.
set -euo pipefail
zoo finetune tv:resnet152 --data food20 --weights DEFAULT --freeze backbone --augment strong \
    --optimizer adam --lr 1e-3 --scheduler none --epochs 10 --batch-size 64 "$@"
