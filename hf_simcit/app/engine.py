"""What the demo app does, without any UI: search the catalogue, recommend for picks, place a new item.

Why separate from the Gradio layout (:mod:`hf_simcit.app.ui`): the same object serves the browser app, the
Space, the latency benchmark and the tests, and every answer here reuses the package's own pieces
(``recommend_items`` for decoding, the quantizer + ``assign_semantic_ids`` for cold-start SIDs, the features
stage's encoders for a new item's modalities).
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..errors import SimCITInputError

LABEL_CHARS = 90  # catalogue texts are cut to this many characters in lists


@dataclass
class Recommendation:
    """One recommended item; ``shared`` = ``[(picked item id, shared SID prefix length)]``, longest first."""

    item_id: str
    label: str
    score: float
    sid: str
    shared: list[tuple[str, int]] = field(default_factory=list)


@dataclass
class Neighbour:
    """A warm item near a new one: cosine of the quantizer's fused embeddings, shared SID prefix length."""

    item_id: str
    label: str
    similarity: float
    sid: str
    shared_prefix: int


@dataclass
class ColdStartResult:
    """A new item placed without retraining.

    ``position``: 1-based place among the top-``k`` recommendations for the picks when the catalogue holds the
    new item (``None``: not among them, or no picks); ``score``: the log-probability of its SID after the
    picks (``None`` without picks); ``kth_score``: the ``k``-th recommendation's log-probability.
    """

    sid: str
    codes: list[int]
    modalities: list[str]
    neighbours: list[Neighbour]
    position: int | None = None
    score: float | None = None
    kth_score: float | None = None
    k: int = 10
    recommendations: list[Recommendation] = field(default_factory=list)


def shared_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """Number of leading SID levels two code tuples share."""
    count = 0
    for x, y in zip(a, b):
        if x != y:
            break
        count += 1
    return count


def short_label(label: str, limit: int = 40) -> str:
    """The first part of an item text (``"Star Wars (1977)"`` of ``"Star Wars (1977). Genres: ..."``)."""
    for separator in (". ", " | "):
        label = label.split(separator, 1)[0]
    return label if len(label) <= limit else label[: limit - 1].rstrip() + "…"


def _label(text: object, item_id: str) -> str:
    text = str(text).strip() if text is not None else ""
    if not text:
        return item_id
    return text if len(text) <= LABEL_CHARS else text[: LABEL_CHARS - 1].rstrip() + "…"


class DemoEngine:
    """A loaded run: recommender, quantizer with its SID tokenizer, and the item table.

    Build it with :meth:`load` (a run folder or a Hub repo id ``ORG/NAME``) or directly from loaded parts.
    ``feature_options``: the features stage's arguments (text encoder, geo scales, ...), used to embed a new
    item exactly as the catalogue was embedded.
    """

    def __init__(self, recommender: Any, quantizer: Any, sid_tokenizer: Any, items: Any,
                 feature_options: Mapping[str, Any] | None = None, source: str = "",
                 assignment_info: Mapping[str, Any] | None = None):
        from ..quantizers.features import load_item_features

        self.rec = recommender
        self.quantizer = quantizer.eval()
        self.sids = sid_tokenizer
        self.source = source
        self.options = dict(feature_options or {})
        self.assignment_info = dict(assignment_info or {})  # sid_assignment.json: how SIDs were made unique
        if recommender.item_ids is None:
            raise SimCITInputError(f"{source}: the recommender has no item_ids.json; it cannot name items")
        text_column = self.options.get("text_column") or "text"
        texts = items[text_column] if text_column in items.column_names else [None] * len(items)
        table_ids = [str(i) for i in items["item_id"]]
        text_of = dict(zip(table_ids, texts))
        self.item_ids: list[str] = list(recommender.item_ids)
        missing = [i for i in self.item_ids if i not in text_of]
        if missing:
            raise SimCITInputError(f"{source}: {len(missing)} recommender items are not in the item table "
                                   f"(e.g. {missing[0]!r}); the data and the recommender come from different runs")
        self.texts = {i: str(text_of[i] or "") for i in self.item_ids}
        self.labels = {i: _label(self.texts[i], i) for i in self.item_ids}
        self._search_keys = [(i, self.texts[i].lower()) for i in self.item_ids]
        self.modalities: list[str] = list(quantizer.config.modality_names)
        self.sid_codes = {i: tuple(int(c) for c in row)
                          for i, row in zip(sid_tokenizer.item_ids, sid_tokenizer.codes.tolist())}
        features = load_item_features(items, self.modalities)
        fused = quantizer.fused_embeddings(features.features, features.masks)
        self._fused = torch.nn.functional.normalize(fused, dim=-1)  # (n, D), row = table order
        self._fused_ids = features.item_ids
        self._text_encoder = None
        self._new_items = 0

    # ------------------------------------------------------------------------------------------- loading
    @classmethod
    def load(cls, source: str | os.PathLike, *, device: str | None = None) -> DemoEngine:
        """A run folder (``RUN/quantizer``, ``RUN/recommender``, an item table) or a Hub repo id ``ORG/NAME``
        whose ``-quantizer``, ``-recommender`` and ``-data`` repos ``hf-simcit push`` wrote."""
        path = Path(source).expanduser()
        if path.exists():
            return cls.from_run_dir(path, device=device)
        text = str(source)
        if text.count("/") == 1 and not text.startswith((".", "/", "~")) and all(text.split("/")):
            return cls.from_hub(text, device=device)
        raise SimCITInputError(f"{text!r} is neither a run folder (it does not exist) nor a Hub repo id ORG/NAME")

    @classmethod
    def from_run_dir(cls, run_dir: str | os.PathLike, *, device: str | None = None) -> DemoEngine:
        from datasets import load_from_disk

        from ..hub import item_table_folder

        run = Path(run_dir)
        if not run.is_dir():
            raise SimCITInputError(f"run folder {run} is not a folder")
        lacking = [name for name in ("quantizer/config.json", "quantizer/sid_table.json",
                                     "recommender/recommender_config.json") if not (run / name).is_file()]
        if lacking:
            raise SimCITInputError(f"{run} is not a finished run folder: {', '.join(lacking)} missing "
                                   "(run `hf-simcit run RECIPE` first)")
        items_dir = item_table_folder(run)
        if items_dir is None:
            raise SimCITInputError(f"{run} has no item table (lgmd/items, features or data/items)")
        info = json.loads((run / "features" / "features.json").read_text()) \
            if (run / "features" / "features.json").is_file() else {}
        return cls._from_folders(run / "quantizer", run / "recommender", load_from_disk(str(items_dir)),
                                 info.get("arguments") or {}, str(run), device)

    @classmethod
    def from_hub(cls, repo_id: str, *, repo_ids: Mapping[str, str] | None = None, revision: str | None = None,
                 device: str | None = None) -> DemoEngine:
        """The three repos of ``hf-simcit push --repo-id ORG/NAME`` (downloaded once into the HF cache);
        ``repo_ids`` names them explicitly (keys quantizer, adapter, dataset), as the pushed Space does."""
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError, RevisionNotFoundError

        from ..hub import FEATURE_OPTIONS_FILE, repo_ids_for

        repos = dict(repo_ids) if repo_ids else repo_ids_for(repo_id, ("quantizer", "adapter", "dataset"))
        folders = {}
        for what, repo in repos.items():
            repo_type = "dataset" if what == "dataset" else "model"
            try:
                folders[what] = Path(snapshot_download(repo, repo_type=repo_type, revision=revision))
            except (RepositoryNotFoundError, RevisionNotFoundError):
                raise SimCITInputError(f"Hub {repo_type} repo {repo} not found (is {repo_id!r} the --repo-id of "
                                       "`hf-simcit push`, and HF_TOKEN set for a private repo?)") from None
            except (HfHubHTTPError, OSError) as err:
                reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
                raise SimCITInputError(f"cannot download {repo_type} repo {repo}: {reason}") from None
        parquet = sorted((folders["dataset"] / "items").glob("*.parquet"))
        if not parquet:
            raise SimCITInputError(f"data set repo {repos['dataset']} has no items/ table; push it with "
                                   "`hf-simcit push RUN --what dataset`")
        from datasets import Dataset

        items = Dataset.from_parquet([str(p) for p in parquet])
        options_file = folders["dataset"] / FEATURE_OPTIONS_FILE
        options = json.loads(options_file.read_text()) if options_file.is_file() else {}
        return cls._from_folders(folders["quantizer"], folders["adapter"], items, options, repo_id, device)

    @classmethod
    def _from_folders(cls, quantizer_dir: Path, recommender_dir: Path, items: Any,
                      options: Mapping[str, Any], source: str, device: str | None) -> DemoEngine:
        from ..quantizers.assignment import ASSIGNMENT_FILE, load_quantizer
        from ..recommender.modeling import load_recommender
        from ..tokenization_simcit import SimCITTokenizer

        quantizer = load_quantizer(quantizer_dir)
        if not hasattr(quantizer, "fused_embeddings"):
            raise SimCITInputError(f"{source}: the app needs a SimCIT quantizer (this run used a baseline one)")
        sids = SimCITTokenizer.from_pretrained(str(quantizer_dir))
        info_file = Path(quantizer_dir) / ASSIGNMENT_FILE
        info = json.loads(info_file.read_text()) if info_file.is_file() else {}
        rec = load_recommender(recommender_dir, device=device or "cpu")
        return cls(rec, quantizer, sids, items, options, source, info)

    # ------------------------------------------------------------------------------------------- queries
    def describe(self) -> str:
        """One line: where the run comes from and its size."""
        levels = self.sids.num_levels
        return (f"{self.source}: {len(self.item_ids):,} items, SIDs of {levels} levels, quantizer modalities "
                f"{', '.join(self.modalities)}")

    def search(self, query: str, limit: int = 10) -> list[tuple[str, str]]:
        """``(item_id, label)`` of items whose text contains every word of ``query`` (case-insensitive),
        the ones starting with the query next, then in catalogue order; an exact item id comes first."""
        words = query.lower().split()
        if not words:
            return []
        start, exact = query.lower().strip(), query.strip()
        found = [(i != exact, not text.startswith(start), row, i) for row, (i, text) in enumerate(self._search_keys)
                 if all(w in text for w in words) or i == exact]
        return [(i, self.labels[i]) for *_, i in sorted(found)[:limit]]

    def sid(self, item_id: str) -> str:
        return self.sids.item_to_sid(item_id)

    def recommend(self, picks: Sequence[str], k: int = 10, hide_picks: bool = True) -> list[Recommendation]:
        """Top-``k`` items after the picks (oldest first), with the picks each shares a SID prefix with.

        ``hide_picks``: the picked items are not recommended back (the generator scores them like any item).
        """
        picks = self._check_picks(picks)
        ranked = self._ranked(self.rec, picks, k, hide_picks)
        return [self._recommendation(item, score, picks) for item, score in ranked]

    @staticmethod
    def _ranked(rec: Any, picks: Sequence[str], k: int, hide_picks: bool) -> list[tuple[str, float]]:
        """``recommend_items`` for one history; with ``hide_picks`` asks for ``k`` more and drops the picks."""
        from ..recommender.inference import recommend_items

        extra = len(set(picks)) if hide_picks else 0
        ranked = recommend_items(rec, [picks], k=k + extra)[0]
        return [(i, s) for i, s in ranked if not (hide_picks and i in picks)][:k]

    def _check_picks(self, picks: Sequence[str]) -> list[str]:
        picks = [str(p) for p in picks]
        if not picks:
            raise SimCITInputError("pick at least one item first")
        unknown = [p for p in picks if p not in self.labels]
        if unknown:
            raise SimCITInputError(f"unknown item id(s): {', '.join(map(repr, unknown[:5]))}")
        return picks

    def _recommendation(self, item: str, score: float, picks: Sequence[str],
                        codes: Sequence[int] | None = None, label: str | None = None) -> Recommendation:
        codes = tuple(codes) if codes is not None else self.sid_codes[item]
        shared = {p: shared_prefix(codes, self.sid_codes[p]) for p in picks}
        ordered = sorted(((p, n) for p, n in shared.items() if n > 0), key=lambda pn: -pn[1])
        sid = self.sids.convert_tokens_to_string(self._tokens(codes))
        return Recommendation(item, label or self.labels[item], float(score), sid, ordered)

    def _tokens(self, codes: Sequence[int]) -> list[str]:
        from ..tokenization_simcit import sid_token

        return [sid_token(level, int(code)) for level, code in enumerate(codes)]

    # ---------------------------------------------------------------------------------------- cold start
    def new_item_features(self, text: str | None = None, latitude: float | None = None,
                          longitude: float | None = None) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """One new item's features for the quantizer's modalities, computed as the features stage does;
        modalities a new item cannot have (collaborative: no interactions yet; image: not taken here) are absent.
        """
        dims = dict(zip(self.quantizer.config.modality_names, self.quantizer.config.modality_dims))
        features, masks = {}, {}
        for modality, dim in dims.items():
            vector, present = torch.zeros(1, dim), False
            if modality == "text" and text and text.strip():
                vector, present = self._encode_text(text.strip()), True
            elif modality == "geo" and latitude is not None and longitude is not None:
                from ..features.geo import geo_features

                values, mask = geo_features(
                    [latitude], [longitude], scales_km=self.options.get("geo_scales_km") or (0.25, 1.0, 4.0, 16.0, 64.0),
                    num_frequencies=int(self.options.get("geo_num_frequencies") or 32),
                    seed=int(self.options.get("seed") or 0))
                vector, present = torch.from_numpy(values), bool(mask[0])
            if present and vector.shape[1] != dim:
                raise SimCITInputError(f"the {modality} features of a new item have {vector.shape[1]} values; the "
                                       f"quantizer expects {dim} (a different encoder than the run's?)")
            features[modality], masks[modality] = vector, torch.tensor([present])
        if not any(bool(m[0]) for m in masks.values()):
            usable = [m for m in dims if m in ("text", "geo")]
            raise SimCITInputError("give the new item " + (" or ".join(
                {"text": "a text", "geo": "coordinates"}[m] for m in usable) or "features") +
                f" (the quantizer uses {', '.join(dims)})")
        return features, masks

    def _encode_text(self, text: str) -> torch.Tensor:
        from ..features.text import encode_texts, load_text_encoder

        if self.options.get("text_encoder") is None and self.options.get("text_encoder_name"):
            raise SimCITInputError(f"the catalogue's text was embedded with a local encoder "
                                   f"({self.options['text_encoder_name']!r}) that was not published; a new item's "
                                   "text cannot be embedded the same way here")
        if self._text_encoder is None:
            self._text_encoder = load_text_encoder(self.options.get("text_encoder"), "cpu")
        embeddings, _ = encode_texts([text], max_length=int(self.options.get("text_max_length") or 128),
                                     tokenizer_and_model=self._text_encoder, progress=False)
        return torch.from_numpy(embeddings)

    def _with_new_embedding(self, features: dict[str, torch.Tensor], masks: dict[str, torch.Tensor]) -> dict:
        """The recommender's dense item embeddings with the new item's text vector appended (the head's
        modality here), so a hybrid ranking (``rec.hybrid_weight``) covers it; without one it ranks by the
        beam alone. Nothing to change for a recommender without a head."""
        embeddings = self.rec.item_embeddings
        if embeddings is None:
            return {}
        text = features.get("text")
        if text is None or not bool(masks["text"][0]) or text.shape[1] != embeddings.shape[1]:
            return {"hybrid_weight": 0.0}
        return {"item_embeddings": torch.cat([embeddings, text.to(embeddings.dtype)])}

    def add_item(self, text: str | None = None, *, latitude: float | None = None, longitude: float | None = None,
                 picks: Sequence[str] = (), k: int = 10, neighbours: int = 5,
                 hide_picks: bool = True) -> ColdStartResult:
        """Give a new item a SID with the trained quantizer (no retraining, no existing SID changes), find its
        nearest warm items, and (with picks) whether the generator would put it in the top ``k``."""
        from ..quantizers.assignment import cold_start_assignment
        from ..recommender.inference import score_items

        features, masks = self.new_item_features(text, latitude, longitude)
        assignment = cold_start_assignment(self.quantizer, self.sids, features, masks, self.assignment_info)
        codes = [int(c) for c in assignment.codes[0]]
        fused = torch.nn.functional.normalize(self.quantizer.fused_embeddings(features, masks), dim=-1)
        similarity = (self._fused @ fused[0]).tolist()
        order = sorted(range(len(similarity)), key=lambda row: -similarity[row])[:neighbours]
        near = [Neighbour(self._fused_ids[row], self.labels.get(self._fused_ids[row], self._fused_ids[row]),
                          float(similarity[row]), self.sid(self._fused_ids[row]),
                          shared_prefix(codes, self.sid_codes[self._fused_ids[row]])) for row in order]
        present = [m for m, mask in masks.items() if bool(mask[0])]
        result = ColdStartResult(self.sids.convert_tokens_to_string(self._tokens(codes)), codes, present, near, k=k)
        if not picks:
            return result
        picks = self._check_picks(picks)
        self._new_items += 1
        new_id = f"new-item-{self._new_items}"
        while new_id in self.labels:
            new_id += "+"
        token_row = torch.tensor([self.rec.tokenizer.convert_tokens_to_ids(self._tokens(codes))])
        extended = dataclasses.replace(self.rec, item_token_ids=torch.cat([self.rec.item_token_ids, token_row]),
                                       item_ids=[*self.item_ids, new_id], **self._with_new_embedding(features, masks))
        ranked = self._ranked(extended, picks, k, hide_picks)
        label = _label(text, new_id) if text else new_id
        result.recommendations = [self._recommendation(i, s, picks, codes, label) if i == new_id
                                  else self._recommendation(i, s, picks) for i, s in ranked]
        result.position = next((n + 1 for n, (i, _) in enumerate(ranked) if i == new_id), None)
        result.kth_score = float(ranked[-1][1])
        result.score = float(score_items(self.rec, picks, token_row)[0])
        return result
