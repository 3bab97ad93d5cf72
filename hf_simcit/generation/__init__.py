"""Trie-constrained decoding of semantic IDs: every generated SID is a real item.

* :class:`SIDTrie` - the catalogue's SIDs as padded per-level tensors (``trie.py``);
* :class:`SIDTrieLogitsProcessor` - the trie as a vectorised ``LogitsProcessor`` for ``model.generate``;
* :func:`sid_beam_search` - fixed-depth beam search that prefills each history once and shares its KV cache;
* :func:`recommend` - top-k distinct items with scores, the entry point for evaluation and inference;
  :func:`with_best_new_items` - its last places given to the new items another score (a dense head) ranks best;
  :func:`rerank_with_item_scores` - its candidates re-ordered by their log-probability plus another model's scores;
* :func:`sid_log_probs` - exact per-level log-probabilities of given SIDs (e.g. new items) after each prompt.
"""

from .beam_search import SIDBeamSearchOutput, prepare_prompts, sid_beam_search
from .logits_process import SIDTrieLogitsProcessor
from .recommend import Recommendations, recommend, rerank_with_item_scores, with_best_new_items
from .scoring import sid_log_probs
from .trie import PAD_TOKEN, SIDTrie

__all__ = [
    "PAD_TOKEN",
    "Recommendations",
    "SIDBeamSearchOutput",
    "SIDTrie",
    "SIDTrieLogitsProcessor",
    "prepare_prompts",
    "recommend",
    "rerank_with_item_scores",
    "sid_beam_search",
    "sid_log_probs",
    "with_best_new_items",
]
