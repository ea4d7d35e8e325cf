#!/bin/sh
# Run the charlm training job of gpu1 (site lab) under Docker.
# Rendered by opsctl; extra arguments are passed to `charlm train` (e.g. --resume).
# Notification secrets are passed through from the environment by name only, never written here.
# Hardened: no capabilities, no privilege gain (setuid), read-only root with only /tmp (tmpfs) and
# the checkpoint mount writable, memory and process limits, no network unless training.network.
set -eu
exec docker run --rm --init \
    --name charlm-lab \
    --user 1000:1000 \
    --cap-drop ALL \
    --security-opt no-new-privileges \
    --read-only \
    --tmpfs /tmp:rw,nosuid,nodev,size=1G \
    --env HOME=/tmp \
    --memory 16G \
    --pids-limit 4096 \
    --shm-size 1G \
    --stop-timeout 60 \
    --network none \
    --device nvidia.com/gpu=all \
    --env CHARLM_WEBHOOK_URL --env TELEGRAM_BOT_TOKEN --env TELEGRAM_CHAT_ID \
    --mount type=bind,source=/backup/ml/data,target=/data,readonly \
    --mount type=bind,source=/backup/ml/checkpoints,target=/checkpoints \
    registry.lab/charlm:1.0 \
    train --data /data/names.txt --out /checkpoints/mlp \
    --model mlp --seed 3407 --steps 20000 --lr 0.01 "$@"
