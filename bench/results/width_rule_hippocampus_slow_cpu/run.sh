#!/bin/bash
cd /work/main && . .venv/bin/activate
D=/work/shared/data/Task04_Hippocampus_dev
for arm in rule norule; do
  W=/work/w30/$arm/work
  echo "== $arm plan $(date -u +%H:%M:%S) load $(cut -d' ' -f1 /proc/loadavg)"
  python -m autoseg plan $D --work $W --device cpu --heuristics /work/w30/$arm.json 2>&1 | grep -v WARN
  echo "== $arm train $(date -u +%H:%M:%S) load $(cut -d' ' -f1 /proc/loadavg)"
  python -m autoseg train --work $W --config unet3d fold=0 --time-budget 30m --seed 0 --resume 2>&1 | grep -v WARN
  echo "== $arm done $(date -u +%H:%M:%S) load $(cut -d' ' -f1 /proc/loadavg)"
done
