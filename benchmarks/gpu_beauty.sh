#!/usr/bin/env bash
# Beauty end to end on one GPU, in at most 9 minutes of wall time on an H200-class GPU: features (cached
# MiniLM text + the sequential cf, SPPMI-SVD of the items that follow each other: the CPU runs' best), the four tokenizers (SimCIT, RQ-VAE, RQ-KMeans, random IDs), each generator to its own
# early-stopping point under a 200-epoch cap, SASRec likewise, every test user. Writes
# benchmarks/results/recommend-beauty-gpu.json, the learning curves and a RESULTS.md section.
#
#   bash benchmarks/gpu_beauty.sh            # on the GPU machine (figures come back under $OUT when set)
#   bash benchmarks/gpu_beauty.sh --smoke    # a minute on CPU: the same code path on ML-100K (tests run it)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
if [[ "${1:-}" == "--smoke" ]]; then
    exec "$PY" benchmarks/recommend.py --smoke --threads 1 --cf sequential
fi
"$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no GPU: run with --smoke on CPU')"
start=$(date +%s)
# the CPU-validated settings (batch 32 windows, dropout 0.2); 5,000 validation users every 2 epochs, patience 10
# (nor a better mean of the last 3 validations);
# each learned row tested twice: plain and with the user's history excluded (RecBole; Beauty has no repeats)
timeout 540 "$PY" benchmarks/recommend.py --dataset beauty --cf sequential --epochs 200 --eval-epochs 2 --patience 10 --patience-window 3 \
    --batch-size 32 --lr 1e-3 --dropout 0.2 --eval-examples 5000 --eval-batch-size 1024 \
    --exclude-history --results-name recommend-beauty-gpu "$@"
echo "gpu_beauty.sh: $(( $(date +%s) - start )) s"
if [[ -n "${OUT:-}" ]]; then
    cp benchmarks/results/recommend-beauty-gpu.json benchmarks/results/curves-recommend-beauty-gpu.png "$OUT"/ 2>/dev/null || true
    tail -n 40 benchmarks/RESULTS.md > "$OUT/RESULTS-tail.md"
fi
