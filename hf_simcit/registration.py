"""Registers the SimCIT config/model/tokenizer with the transformers Auto classes.

Filled in by the SimCIT tokenizer work; a no-op until those modules exist.
"""


def register_auto_classes() -> None:
    return None
