"""``push_run``: a run folder's quantizer, recommender, data set and demo Space, one commit per repo.

Why a separate step from the plans: every plan is built and checked first (:mod:`.plans`), then committed
(:mod:`.commit`), so a bad run folder pushes nothing and a failure names what was pushed before it.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from ..errors import SimCITInputError
from .commit import HubPushError, PushResult, commit_plan
from .facts import run_facts
from .plans import plan_adapter, plan_base, plan_dataset, plan_quantizer, plan_space, resolve_base_model

logger = logging.getLogger(__name__)

ARTIFACTS = ("quantizer", "adapter", "dataset", "space")
REPO_SUFFIXES = {"quantizer": "-quantizer", "adapter": "-recommender", "dataset": "-data", "base": "-base",
                 "space": "-demo"}
NO_REDISTRIBUTION = {"ml-100k": "the MovieLens terms of use forbid redistributing the data"}


def repo_ids_for(repo_id: str, what: Sequence[str] = ARTIFACTS) -> dict[str, str]:
    """The repo of each artifact: ``ORG/NAME`` + ``-quantizer`` / ``-recommender`` / ``-data``."""
    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise SimCITInputError(f"--repo-id must look like ORG/NAME, got {repo_id!r}")
    return {w: f"{repo_id}{REPO_SUFFIXES[w]}" for w in what}


def push_run(
    run_dir: str | os.PathLike,
    repo_id: str,
    *,
    what: Sequence[str] = ARTIFACTS,
    private: bool | None = None,
    repo_ids: Mapping[str, str] | None = None,
    base_model: str | None = None,
    license: str | None = None,  # noqa: A002
    token: str | None = None,
    endpoint: str | None = None,
    templates_dir: str | os.PathLike | None = None,
    dry_run: bool = False,
) -> dict[str, PushResult]:
    """Push the run's quantizer+tokenizer, recommender adapter, data set and demo Space; one commit per repo.

    Every artifact is validated and its card rendered before the first network call, so a bad run folder
    pushes nothing; ``dry_run=True`` stops there and returns the planned files (empty commit ids). Only the
    main process pushes (``RANK``/``LOCAL_RANK`` 0; others return ``{}``). Repos are named by
    :func:`repo_ids_for` unless ``repo_ids`` overrides some (keys: quantizer, adapter, dataset, space, base).
    The Space (:mod:`hf_simcit.app.space`) names the other three repos and loads them when it starts.

    Raises :class:`HubPushError` (remote state included in the message) when a push fails; repos pushed
    before the failing one keep their new commit (listed in the message and in ``err.results``).
    """
    from huggingface_hub import HfApi, get_token

    rank = int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0")) or 0)
    if rank != 0:  # under accelerate/torchrun every process runs the stage: only the main one pushes
        logger.info("push_run: process %d is not the main process; nothing pushed", rank)
        return {}
    if not dry_run and token is None and get_token() is None:   # bad input, not a failed push: one line
        raise SimCITInputError("no Hugging Face token: set HF_TOKEN or run `hf auth login` (nothing was pushed)")
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise SimCITInputError(f"run folder {run_dir} does not exist")
    what = list(dict.fromkeys(what))
    unknown = [w for w in what if w not in ARTIFACTS]
    if unknown or not what:
        raise SimCITInputError(f"--what: unknown artifact(s) {unknown}; choose from {','.join(ARTIFACTS)}")
    names = {**repo_ids_for(repo_id, (*ARTIFACTS, "base")), **(repo_ids or {})}
    dataset_repo = names["dataset"] if "dataset" in what else None
    quantizer_repo = names["quantizer"] if "quantizer" in what else None
    templates = Path(templates_dir) if templates_dir else None
    facts = run_facts(run_dir)
    if "dataset" in what and facts["dataset"] in NO_REDISTRIBUTION and not private:
        logger.warning("pushing %s publicly: %s; consider --private", facts["dataset"],
                       NO_REDISTRIBUTION[facts["dataset"]])
    with tempfile.TemporaryDirectory(prefix="hf-simcit-push-") as workdir:
        plans = []
        for item in what:
            if item == "quantizer":
                plans.append(plan_quantizer(run_dir, names[item], facts=facts, dataset_repo=dataset_repo,
                                            templates_dir=templates, license=license))
            elif item == "adapter":
                adapter_base = None
                if (run_dir / "recommender" / "adapter_config.json").is_file():
                    adapter_base, base_dir = resolve_base_model(run_dir, base_model)
                    if base_dir is not None:  # pushed first, so the adapter never names a missing repo
                        adapter_base = names["base"]
                        plans.append(plan_base(base_dir, adapter_base, adapter_repo=names[item],
                                               templates_dir=templates, license=license))
                plans.append(plan_adapter(run_dir, names[item], facts=facts, quantizer_repo=quantizer_repo,
                                          dataset_repo=dataset_repo, base_model=adapter_base,
                                          templates_dir=templates, license=license))
            elif item == "space":
                plans.append(plan_space(names[item], source=repo_id, repo_ids=names, facts=facts,
                                        templates_dir=templates, license=license))
            else:
                plans.append(plan_dataset(run_dir, names[item], facts=facts, templates_dir=templates,
                                          workdir=Path(workdir), license=license))
        if dry_run:  # everything checked and rendered, nothing sent
            return {plan.what: plan.dry_run() for plan in plans}
        api = HfApi(endpoint=endpoint, token=token)
        results = {}
        for plan in plans:
            try:
                results[plan.what] = commit_plan(api, plan, private=private)
            except HubPushError as err:
                err.results = dict(results)  # the repos pushed before the failure
                if results:
                    done = ", ".join(f"{r.what} -> {r.repo_id} at {r.commit_oid[:12]}" for r in results.values())
                    err.args = (f"{err.args[0]}; pushed before the failure: {done}",)
                raise
            logger.info("pushed %s to %s (commit %s)", plan.what, plan.repo_id, results[plan.what].commit_oid)
    return results


def load_recommender_from_hub(repo_id: str, *, revision: str | None = None, device: str | None = None):
    """The recommender pushed by :func:`push_run` (``ORG/NAME-recommender``) as an ``hf_simcit`` Recommender.

    Downloads the repo snapshot and loads it with ``load_recommender``: the model (a LoRA adapter on its base,
    fetched by the Hub id in its config, or the full model), the extended tokenizer and ``item_token_ids``,
    ready for ``hf_simcit.generation.recommend``.
    """
    from huggingface_hub import snapshot_download

    from ..recommender.modeling import load_recommender

    return load_recommender(snapshot_download(repo_id, revision=revision), device=device)


__all__ = ["ARTIFACTS", "REPO_SUFFIXES", "load_recommender_from_hub", "push_run", "repo_ids_for"]
