#!/usr/bin/env bash
# ResNet18-CIFAR: SGD 0.1, momentum 0.9, wd 5e-4, 2 warmup epochs, x0.1 at epochs 100 and 150.
set -euo pipefail
zoo finetune resnet18_cifar --data "${DATA:-cifar10}" --optimizer sgd --lr 0.1 --momentum 0.9 --nesterov \
    --weight-decay 5e-4 --scheduler multistep --milestones 100,150 --warmup-epochs 2 --epochs 160 \
    --batch-size 128 --augment cifar "$@"
