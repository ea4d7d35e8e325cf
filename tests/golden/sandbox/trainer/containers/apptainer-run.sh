#!/bin/sh
# Run the charlm training job of trainer (site sandbox) under Apptainer/Singularity.
# Rendered by opsctl; extra arguments are passed to `charlm train` (e.g. --resume).
set -eu
runtime=$(command -v apptainer || command -v singularity)
# Notification settings reach the container through the environment only (never argv, never a file).
[ -z "${CHARLM_WEBHOOK_URL:-}" ] || export APPTAINERENV_CHARLM_WEBHOOK_URL="$CHARLM_WEBHOOK_URL"
[ -z "${TELEGRAM_BOT_TOKEN:-}" ] || export APPTAINERENV_TELEGRAM_BOT_TOKEN="$TELEGRAM_BOT_TOKEN"
[ -z "${TELEGRAM_CHAT_ID:-}" ] || export APPTAINERENV_TELEGRAM_CHAT_ID="$TELEGRAM_CHAT_ID"
# Hardened: --containall (own /tmp, PID and IPC namespaces, no host home), --no-privs (no
# capabilities; the image is read-only and setuid is off), memory and process limits (cgroups v2),
# no network unless training.network.
exec "$runtime" run --containall --cleanenv --no-privs \
    --net --network none \
    --memory 16G --pids-limit 4096 \
    -B /var/lib/opsctl-sandbox/ml/data:/data:ro \
    -B /var/lib/opsctl-sandbox/ml/checkpoints:/checkpoints \
    "${CHARLM_SIF:-charlm.sif}" \
    train --data /data/names.txt --out /checkpoints/transformer \
    --model transformer --seed 3407 --time-budget 60 "$@"
