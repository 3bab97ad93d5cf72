"""A tiny but real run folder for the demo app's tests: built from configs in seconds, never the demo run.

Items are 16 films with MiniLM text embeddings (the offline wheel, so a new item's text is embedded exactly
like the catalogue) and a 4-d collaborative vector (absent for one item); an untrained SimCIT quantizer
with k-means codebooks (text + cf, 2 levels of 4 codes, plus the disambiguation level) gives the SIDs; the recommender is a
one-layer Llama built from a config and trained for a few steps on the tiny split.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

FILMS = [
    "Star Wars (1977). Genres: Action, Adventure, Sci-Fi.",
    "Empire Strikes Back, The (1980). Genres: Action, Adventure, Sci-Fi.",
    "Return of the Jedi (1983). Genres: Action, Adventure, Sci-Fi.",
    "Toy Story (1995). Genres: Animation, Children's, Comedy.",
    "Aladdin (1992). Genres: Animation, Children's, Musical.",
    "Lion King, The (1994). Genres: Animation, Children's, Musical.",
    "Fargo (1996). Genres: Crime, Drama, Thriller.",
    "Pulp Fiction (1994). Genres: Crime, Drama.",
    "Godfather, The (1972). Genres: Action, Crime, Drama.",
    "Titanic (1997). Genres: Drama, Romance.",
    "Casablanca (1942). Genres: Drama, Romance, War.",
    "Alien (1979). Genres: Horror, Sci-Fi.",
    "Aliens (1986). Genres: Action, Sci-Fi, Thriller, War.",
    "Terminator, The (1984). Genres: Action, Sci-Fi, Thriller.",
    "Groundhog Day (1993). Genres: Comedy, Romance.",
    "Princess Bride, The (1987). Genres: Action, Adventure, Comedy, Romance.",
]
ITEM_IDS = [f"m{i}" for i in range(len(FILMS))]
NEW_FILM = "Star Trek: First Contact (1996). Genres: Action, Adventure, Sci-Fi."
LATITUDES = [40.70 + 0.01 * i for i in range(len(FILMS))]  # the "geo" variant: where each film is shown
GEO_SCALES_KM = [1.0, 16.0]


def build_app_run(run: Path, second: str = "cf") -> Path:
    """Write data/, features/ (+ features.json), quantizer/ (+ SIDs), recommender/ and eval/ under ``run``.

    ``second``: the quantizer's other modality besides text, ``"cf"`` (absent for a new item) or ``"geo"``
    (each film gets coordinates; a new item can be given some).
    """
    from datasets import Dataset, DatasetDict

    from hf_simcit.configuration_simcit import SimCITConfig
    from hf_simcit.data import RecDataset
    from hf_simcit.features.geo import geo_features
    from hf_simcit.features.text import encode_texts
    from hf_simcit.modeling_simcit import SimCITQuantizer
    from hf_simcit.quantizers.assignment import save_semantic_ids
    from hf_simcit.quantizers.simcit import initialize_simcit_codebooks
    from hf_simcit.recommender.modeling import RecommenderModelArguments, build_recommender, save_recommender

    n = len(FILMS)
    # users watch runs of neighbouring films, so the generator has something to learn
    sequences = [[(u + j) % n for j in range(6)] for u in range(12)]
    train = [(u, s[:t], s[t]) for u, s in enumerate(sequences) for t in range(1, 4)]
    splits = DatasetDict({
        "train": Dataset.from_dict({"user_id": [u for u, _, _ in train], "history": [h for _, h, _ in train],
                                    "target": [t for _, _, t in train]}),
        "validation": Dataset.from_dict({"user_id": list(range(12)), "history": [s[:4] for s in sequences],
                                         "target": [s[4] for s in sequences]}),
        "test": Dataset.from_dict({"user_id": list(range(12)), "history": [s[:5] for s in sequences],
                                   "target": [s[5] for s in sequences]}),
    })
    items = Dataset.from_dict({"item_index": list(range(n)), "item_id": ITEM_IDS, "text": FILMS})
    users = Dataset.from_dict({"user_id": list(range(12)), "raw_user_id": [str(u) for u in range(12)],
                               "items": sequences})
    RecDataset(splits, items, users, {"dataset": "tiny-films", "source": "unit test", "users": 12, "items": n,
                                      "interactions": 72}).save_to_disk(run / "data")
    (run / "data" / "stats.json").write_text(json.dumps({"dataset": "tiny-films", "source": "unit test",
                                                         "users": 12, "items": n, "interactions": 72}))
    text, _ = encode_texts(FILMS, progress=False)
    arguments = {"modalities": ["text"], "text_encoder": None, "text_column": "text", "text_max_length": 128,
                 "seed": 0}
    if second == "geo":
        latitude, longitude = LATITUDES, [-74.0 + 0.01 * i for i in range(n)]
        other, _ = geo_features(latitude, longitude, scales_km=GEO_SCALES_KM, num_frequencies=4, seed=0)
        arguments.update(modalities=["text", "geo"], geo_scales_km=GEO_SCALES_KM, geo_num_frequencies=4)
        present_other = torch.ones(n, dtype=torch.bool)
    else:
        other = np.random.default_rng(0).standard_normal((n, 4)).astype(np.float32)
        other /= np.linalg.norm(other, axis=1, keepdims=True)
        present_other = torch.tensor([i != 3 for i in range(n)])
    table = items.add_column("text_embedding", text.tolist())
    table = table.add_column(f"{second}_embedding",
                             [other[i].tolist() if present_other[i] else None for i in range(n)])
    table.save_to_disk(str(run / "features"))
    (run / "features" / "features.json").write_text(json.dumps({"arguments": arguments}))
    torch.manual_seed(0)
    config = SimCITConfig(modality_names=["text", second], modality_dims=[text.shape[1], other.shape[1]],
                          encoder_hidden_sizes=[16], latent_dim=8, num_levels=2, codebook_size=4,
                          codebook_init="uniform")
    quantizer = SimCITQuantizer(config).eval()
    present = {"text": torch.ones(n, dtype=torch.bool), second: present_other}
    initialize_simcit_codebooks(quantizer, {"text": torch.from_numpy(text), second: torch.from_numpy(other)},
                                present, latent_rms=1.0)  # k-means codebooks of the fused embeddings
    quantizer.save_pretrained(run / "quantizer", safe_serialization=True)
    sid_tokenizer, _ = save_semantic_ids(run / "quantizer", str(run / "features"), "level")
    args = RecommenderModelArguments(tiny_hidden_size=32, tiny_num_layers=1, tiny_num_heads=2,
                                     tiny_intermediate_size=64)
    rec = build_recommender(args, sid_tokenizer, seed=0)
    _train_a_little(rec, splits["train"], [ITEM_IDS[i] for i in range(n)])
    save_recommender(rec, run / "recommender")
    (run / "eval").mkdir(exist_ok=True)
    (run / "eval" / "metrics.json").write_text(json.dumps({"recall@5": 0.5, "ndcg@10": 0.3, "split": "test"}))
    return run


def _train_a_little(rec, train, data_item_ids: list[str], steps: int = 30) -> None:
    """A few full-batch steps of next-SID prediction (teacher forcing) on the training rows."""
    position = {item: row for row, item in enumerate(rec.item_ids)}
    rows = []
    for history, target in zip(train["history"], train["target"]):
        ids = [position[data_item_ids[i]] for i in [*history, target]]
        tokens = [rec.tokenizer.bos_token_id] + [t for i in ids for t in rec.item_token_ids[i].tolist()]
        rows.append(tokens)
    width = max(map(len, rows))
    input_ids = torch.tensor([r + [rec.tokenizer.pad_token_id] * (width - len(r)) for r in rows])
    mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
    labels = input_ids.masked_fill(mask == 0, -100)
    labels[:, 0] = -100
    optimizer = torch.optim.AdamW(rec.model.parameters(), lr=1e-2)
    rec.model.train()
    for _ in range(steps):
        loss = rec.model(input_ids=input_ids, attention_mask=mask, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    rec.model.eval()
