#!/usr/bin/env bash
# Prepared GPU check (under 4 minutes, no network): 50 bf16 pretraining steps of the
# spectro-temporal ViT-B recipe's model on synthetic data, without and with torch.compile;
# prints samples/s and the fraction of the measured bf16 matmul peak (target on an
# H100/H200-class GPU: >= 45 %). Run from the repository root with satmae installed.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
PYTHONPATH=. "$PYTHON" -c \
    "import sys; from satmae.cli import main; sys.exit(main(['info']))"
PYTHONPATH=. timeout 220 "$PYTHON" benchmarks/gpu_pretrain.py --steps 50 --warmup 5 --batch 64 \
    --out "${OUT:-benchmarks/results}/gpu_pretrain.json"
