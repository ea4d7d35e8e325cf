#!/bin/sh
# Run the charlm training job of trainer (site sandbox) under Docker.
# Rendered by opsctl; extra arguments are passed to `charlm train` (e.g. --resume).
# Notification secrets are passed through from the environment by name only, never written here.
# Hardened: no capabilities, no privilege gain (setuid), read-only root with only /tmp (tmpfs) and
# the checkpoint mount writable, memory and process limits, no network unless training.network.
set -eu
exec docker run --rm --init \
    --name charlm-sandbox \
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
    --env CHARLM_WEBHOOK_URL --env TELEGRAM_BOT_TOKEN --env TELEGRAM_CHAT_ID \
    --mount type=bind,source=/var/lib/opsctl-sandbox/ml/data,target=/data,readonly \
    --mount type=bind,source=/var/lib/opsctl-sandbox/ml/checkpoints,target=/checkpoints \
    opsctl/charlm:latest \
    train --data /data/names.txt --out /checkpoints/transformer \
    --model transformer --seed 3407 --time-budget 60 "$@"
