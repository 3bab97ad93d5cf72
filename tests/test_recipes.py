"""read_recipe: the one loader of recipe YAML (stage recipes, stage commands, the pipeline)."""

from __future__ import annotations

import pytest

from hf_simcit.errors import SimCITInputError
from hf_simcit.utils.recipes import mapping_fields, read_recipe


def _write(tmp_path, text: str, name: str = "r.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_sections_and_flat_keys_read_the_same(tmp_path):
    sectioned = _write(tmp_path, "model:\n  a: 1\ndata:\n  b: x\ntraining:\n  c: 0.5\nd: [1, 2]\n", "s.yaml")
    flat = _write(tmp_path, "a: 1\nb: x\nc: 0.5\nd: [1, 2]\n", "f.yaml")
    assert read_recipe(sectioned) == read_recipe(flat) == {"a": 1, "b": "x", "c": 0.5, "d": [1, 2]}
    # a later key wins (file order), as before; a section name holding a plain value is an ordinary key
    assert read_recipe(_write(tmp_path, "a: 1\nmodel:\n  a: 2\n")) == {"a": 2}
    assert read_recipe(_write(tmp_path, "data: runs/x/data\nrank: 3\n")) == {"data": "runs/x/data", "rank": 3}
    assert read_recipe(_write(tmp_path, "")) == {}
    assert read_recipe(_write(tmp_path, "# only a comment\n")) == {}


def test_mappings_are_kept_where_allowed(tmp_path):
    path = _write(tmp_path, "options: {rank: 2}\ntraining:\n  more: {a: 1}\n")
    assert read_recipe(path, mappings={"options", "more"}) == {"options": {"rank": 2}, "more": {"a": 1}}
    # no sections (the pipeline): nothing is flattened
    assert read_recipe(_write(tmp_path, "prepare: {k: 5}\n"), sections=(), mappings={"prepare"}) == {
        "prepare": {"k": 5}}


@pytest.mark.parametrize(("text", "message"), [
    ("a: [1\n", r"r\.yaml: not valid YAML"),
    ("- a\n- b\n", r"r\.yaml: expected a mapping of recipe keys, got a list"),
    ("trainig:\n  max_steps: 3\n", r"r\.yaml: unknown section 'trainig' \(a key holding a mapping; sections are "
                                   "model, data, training\\)"),
    ("training:\n  optim: {lr: 1}\n", r"r\.yaml: unknown section 'optim'"),
])
def test_bad_files_name_the_file_and_the_problem(tmp_path, text, message):
    with pytest.raises(SimCITInputError, match=message):
        read_recipe(_write(tmp_path, text))


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(SimCITInputError, match=r"pipeline recipe '.*nope\.yaml' does not exist"):
        read_recipe(tmp_path / "nope.yaml", what="pipeline recipe")


def test_mapping_fields_are_the_dict_typed_arguments():
    from hf_simcit.features import FeaturesArguments
    from hf_simcit.pipeline import PipelineArguments
    from hf_simcit.training.quantizer import QuantizerTrainingArguments

    assert mapping_fields(FeaturesArguments) == {"cf_lgmd_options"}
    assert mapping_fields(PipelineArguments) == {"prepare", "overrides"}
    assert mapping_fields(QuantizerTrainingArguments) == set()


def test_every_stage_parser_reads_recipes_the_same_way(tmp_path):
    """The recommender and quantizer parsers and the features command take sectioned recipes (as the pipeline
    always did) and name the file for a bad one."""
    import argparse

    from hf_simcit.commands.features import parse_features_arguments
    from hf_simcit.training.quantizer import parse_quantizer_recipe
    from hf_simcit.training.recommender import parse_recommender_recipe

    quantizer = _write(tmp_path, "model:\n  latent_dim: 16\ntraining:\n  max_steps: 7\n", "q.yaml")
    args = parse_quantizer_recipe(str(quantizer))
    assert (args.latent_dim, args.max_steps) == (16, 7)
    assert parse_quantizer_recipe(str(quantizer), ["--max_steps", "9"]).max_steps == 9
    features = _write(tmp_path, "data: runs/x/data\ncf_lgmd_options: {rank: 4}\n", "f.yaml")
    parsed = parse_features_arguments(argparse.Namespace(recipe=str(features)))
    assert (parsed.data, parsed.cf_lgmd_options) == ("runs/x/data", {"rank": 4})
    bad = _write(tmp_path, "training: {max_steps: [1\n", "bad.yaml")
    for parse in (lambda p: parse_recommender_recipe(p), lambda p: parse_quantizer_recipe(p),
                  lambda p: parse_features_arguments(argparse.Namespace(recipe=p))):
        with pytest.raises(SimCITInputError, match=r"bad\.yaml: not valid YAML"):
            parse(str(bad))


def test_mapping_fields_do_not_depend_on_a_parser_built_before():
    """HfArgumentParser rewrites a field's type in place (dict | str | None -> str)."""
    from transformers import HfArgumentParser

    from hf_simcit.features import FeaturesArguments

    HfArgumentParser(FeaturesArguments)
    assert mapping_fields(FeaturesArguments) == {"cf_lgmd_options"}
