"""Round-trips through the local Hub stand-in with the stock HF libraries (no hf_simcit code involved).

They prove the server speaks enough of the Hub protocol for huggingface_hub, transformers, peft and
datasets, so that the hf_simcit push tests (tests/test_hub_push.py) test our code, not the stand-in.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

import pytest
import torch

# The local Hub stand-in; tests/conftest.py should load it too, so that HF_ENDPOINT etc. are set before
# any test module imports huggingface_hub (hub_fixtures also patches the settings if that already happened).
pytest_plugins = ["hub_fixtures"]

def _http(method: str, url: str, **headers: str) -> tuple[int, dict, bytes]:
    """A raw request with the stdlib, to check the wire format itself."""
    request = urllib.request.Request(url, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def test_environment_points_at_local_hub(hub):
    from huggingface_hub import constants, whoami

    assert hub.endpoint == constants.ENDPOINT
    assert constants.HF_HUB_DISABLE_XET is True
    assert whoami()["name"] == "hf-simcit-tester"


def test_commit_history_lfs_and_resolve(hub, hub_repo_id, tmp_path):
    from huggingface_hub import (
        CommitOperationAdd,
        CommitOperationDelete,
        HfApi,
        hf_hub_download,
        snapshot_download,
    )

    api = HfApi()
    url = api.create_repo(hub_repo_id)
    assert url.repo_id == hub_repo_id
    api.create_repo(hub_repo_id, exist_ok=True)  # 409 tolerated
    big = bytes(range(256)) * 40
    first = api.create_commit(hub_repo_id, operations=[
        CommitOperationAdd("notes/a.txt", b"hello"),
        CommitOperationAdd("weights.safetensors", big),
    ], commit_message="first")
    files = hub.files(hub_repo_id)
    assert files["notes/a.txt"] == b"hello" and files["weights.safetensors"] == big
    assert hub.repo(hub_repo_id).commits[first.oid].files["weights.safetensors"].lfs
    second = api.create_commit(hub_repo_id, operations=[CommitOperationDelete("notes/a.txt")],
                               commit_message="second")
    assert [c.commit_id for c in api.list_repo_commits(hub_repo_id)][:2] == [second.oid, first.oid]
    assert sorted(api.list_repo_files(hub_repo_id)) == [".gitattributes", "weights.safetensors"]
    # Old revisions stay readable.
    old = hf_hub_download(hub_repo_id, "notes/a.txt", revision=first.oid, cache_dir=tmp_path)
    assert Path(old).read_bytes() == b"hello"
    # Range requests and the EntryNotFound error code.
    status, headers, body = _http("GET", f"{hub.endpoint}/{hub_repo_id}/resolve/main/weights.safetensors",
                                  Range="bytes=10-19")
    assert status == 206 and body == big[10:20] and headers["X-Repo-Commit"] == second.oid
    status, headers, _ = _http("HEAD", f"{hub.endpoint}/{hub_repo_id}/resolve/main/nope.json")
    assert status == 404 and headers["X-Error-Code"] == "EntryNotFound"
    info = api.get_paths_info(hub_repo_id, ["weights.safetensors", "missing"], expand=True)
    assert len(info) == 1 and info[0].lfs.size == len(big) and info[0].last_commit.oid == first.oid
    assert api.list_repo_refs(hub_repo_id).branches[0].target_commit == second.oid
    top = {entry.path for entry in api.list_repo_tree(hub_repo_id, revision=first.oid)}
    assert top == {".gitattributes", "notes", "weights.safetensors"}
    assert api.file_exists(hub_repo_id, "weights.safetensors") and not api.file_exists(hub_repo_id, "nope")
    snapshot = Path(snapshot_download(hub_repo_id, cache_dir=tmp_path))
    assert (snapshot / "weights.safetensors").read_bytes() == big and not (snapshot / "notes").exists()


def test_failed_commit_leaves_previous_commit(hub, hub_repo_id):
    from huggingface_hub import CommitOperationAdd, HfApi
    from huggingface_hub.errors import HfHubHTTPError

    api = HfApi()
    api.create_repo(hub_repo_id)
    api.upload_file(path_or_fileobj=b"v1", path_in_repo="a.txt", repo_id=hub_repo_id)
    before = hub.head(hub_repo_id)
    hub.fail_next("commit")
    with pytest.raises(HfHubHTTPError):
        api.create_commit(hub_repo_id, operations=[CommitOperationAdd("a.txt", b"v2"),
                                                   CommitOperationAdd("b.safetensors", b"\0" * 64)],
                          commit_message="doomed")
    assert hub.head(hub_repo_id) == before
    assert hub.files(hub_repo_id) == {".gitattributes": hub.files(hub_repo_id)[".gitattributes"], "a.txt": b"v1"}
    # A stale parent commit is refused (412) instead of silently overwriting.
    api.upload_file(path_or_fileobj=b"v3", path_in_repo="a.txt", repo_id=hub_repo_id)
    with pytest.raises(HfHubHTTPError):
        api.create_commit(hub_repo_id, operations=[CommitOperationAdd("a.txt", b"v4")],
                          commit_message="stale", parent_commit=before)
    assert hub.files(hub_repo_id)["a.txt"] == b"v3"


def test_transformers_model_and_tokenizer_round_trip(hub, hub_repo_id, tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import AutoModel, AutoTokenizer, BertConfig, BertModel, PreTrainedTokenizerFast

    config = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=32)
    torch.manual_seed(0)
    model = BertModel(config).eval()
    vocab = {tok: i for i, tok in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "hello", "world"])}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]", pad_token="[PAD]")
    model.push_to_hub(hub_repo_id)
    tokenizer.push_to_hub(hub_repo_id)
    assert "model.safetensors" in hub.files(hub_repo_id)

    loaded = AutoModel.from_pretrained(hub_repo_id, cache_dir=tmp_path).eval()
    loaded_tok = AutoTokenizer.from_pretrained(hub_repo_id, cache_dir=tmp_path)
    ids = torch.tensor([loaded_tok("hello world")["input_ids"]])
    assert ids.tolist() == [[4, 5]]
    with torch.no_grad():
        torch.testing.assert_close(loaded(ids).last_hidden_state, model(ids).last_hidden_state)


def test_peft_adapter_round_trip(hub, hub_repo_id, tmp_path):
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=32)
    torch.manual_seed(0)
    base_dir = tmp_path / "base"
    LlamaForCausalLM(config).save_pretrained(base_dir)
    peft_model = get_peft_model(LlamaForCausalLM.from_pretrained(base_dir),
                                LoraConfig(r=2, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    peft_model.push_to_hub(hub_repo_id)
    assert "adapter_model.safetensors" in hub.files(hub_repo_id)

    reloaded = PeftModel.from_pretrained(LlamaForCausalLM.from_pretrained(base_dir), hub_repo_id).eval()
    ids = torch.tensor([[1, 5, 9, 3]])
    with torch.no_grad():
        torch.testing.assert_close(reloaded(ids).logits, peft_model.eval()(ids).logits)


def test_dataset_push_and_load(hub, hub_repo_id):
    from datasets import Dataset, DatasetDict, load_dataset

    data = DatasetDict({
        "train": Dataset.from_dict({"user_id": [0, 1], "history": [[1], [2, 3]], "target": [2, 4]}),
        "test": Dataset.from_dict({"user_id": [0], "history": [[1, 2]], "target": [3]}),
    })
    data.push_to_hub(hub_repo_id)
    loaded = load_dataset(hub_repo_id)
    assert sorted(loaded) == ["test", "train"]
    assert loaded["train"]["history"] == [[1], [2, 3]] and loaded["test"]["target"] == [3]


def test_model_card_eval_results_round_trip(hub, hub_repo_id):
    from huggingface_hub import EvalResult, ModelCard, ModelCardData, create_repo

    create_repo(hub_repo_id)
    data = ModelCardData(model_name="tiny", eval_results=[EvalResult(
        task_type="recommendation", dataset_type="ml-100k", dataset_name="ML-100K", dataset_split="test",
        metric_type="recall", metric_name="Recall@10", metric_value=0.125)])
    card = ModelCard.from_template(data)
    card.push_to_hub(hub_repo_id)
    loaded = ModelCard.load(hub_repo_id)
    assert loaded.data.eval_results[0].metric_value == 0.125
    assert loaded.data.eval_results[0].dataset_split == "test"


def test_error_codes_map_to_hub_exceptions(hub, hub_repo_id, tmp_path):
    from huggingface_hub import HfApi, hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    api = HfApi()
    with pytest.raises(RepositoryNotFoundError):
        api.repo_info(hub_repo_id)
    api.create_repo(hub_repo_id, repo_type="dataset")
    assert api.repo_info(hub_repo_id, repo_type="dataset").id == hub_repo_id
    with pytest.raises(RepositoryNotFoundError):  # a dataset is not a model
        api.repo_info(hub_repo_id)
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download(hub_repo_id, ".gitattributes", repo_type="dataset", revision="v9", cache_dir=tmp_path)
    with pytest.raises(EntryNotFoundError):
        hf_hub_download(hub_repo_id, "missing.json", repo_type="dataset", cache_dir=tmp_path)
    with pytest.raises(RepositoryNotFoundError):
        api.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id=hub_repo_id + "-nope")
