#!/usr/bin/env bash
# Run the ablations of docs/experiments.md one after another (about 4 minutes each on 2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."
run() { .venv/bin/emotrace train classifier --config configs/classifier/ablations/base.yaml -q "name=$1" "${@:2}"; }
run abl_base
run abl_noaug augment.enabled=false
run abl_hard train.targets=hard
run abl_frozen model.freeze_backbone=true
run abl_va model.head=va
run abl_multitask model.head=multitask
run abl_64px model.input_size=64
