"""One repo, one atomic commit: a prepared :class:`Plan` mirrored to the Hub with ``HfApi.create_commit``.

Why one commit per repo (every upload, deletion and the card together): the Hub applies a commit atomically,
so a push that fails midway (network, server, a bad file) leaves the remote repo at its previous commit;
:class:`HubPushError` says so after checking the remote head. The commit is made with ``parent_commit`` = the
head read before uploading, so a concurrent push is refused instead of overwritten.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class HubPushError(RuntimeError):
    """A push failed; the message says which repo, why, and at which commit the remote repo stayed.

    ``results`` holds the :class:`PushResult` of the repos pushed before the failing one (each its own commit).
    """

    results: dict[str, PushResult] = {}


@dataclass
class PushResult:
    """What one push did: the repo, its commit before and after, and the files of the commit."""

    what: str
    repo_id: str
    repo_type: str
    commit_oid: str
    previous_oid: str | None
    commit_url: str
    uploaded: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)


@dataclass
class Plan:
    """One repo's commit, fully prepared locally before any network call."""

    what: str
    repo_id: str
    repo_type: str
    files: dict[str, bytes | Path]  # path in repo -> content or local file
    card: str
    commit_message: str
    keep_remote: tuple[str, ...] = (".gitattributes",)
    create_options: dict[str, Any] = field(default_factory=dict)  # e.g. a Space's sdk

    def dry_run(self) -> PushResult:
        """What the commit would upload, with empty commit ids: nothing is sent."""
        return PushResult(self.what, self.repo_id, self.repo_type, "", None, "",
                          uploaded=sorted([*self.files, "README.md"]))


def _head(api, repo_id: str, repo_type: str) -> str | None:
    from huggingface_hub.errors import RepositoryNotFoundError

    try:
        return api.repo_info(repo_id, repo_type=repo_type).sha
    except RepositoryNotFoundError:
        return None


def commit_plan(api, plan: Plan, *, private: bool | None) -> PushResult:
    """Create the repo if needed and push the plan as one commit mirroring the local files."""
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete

    stage = "creating the repo"
    previous = None
    try:
        previous = _head(api, plan.repo_id, plan.repo_type)
        if previous is None:
            api.create_repo(plan.repo_id, repo_type=plan.repo_type, private=private, exist_ok=True,
                            **plan.create_options)
            previous = _head(api, plan.repo_id, plan.repo_type)
        stage = "listing the remote files"
        remote = set(api.list_repo_files(plan.repo_id, repo_type=plan.repo_type, revision=previous))
        local = {**plan.files, "README.md": plan.card.encode()}
        additions = [CommitOperationAdd(path_in_repo=path, path_or_fileobj=str(content) if isinstance(
            content, Path) else content) for path, content in sorted(local.items())]
        deletions = [CommitOperationDelete(path_in_repo=path) for path in sorted(remote - set(local))
                     if path not in plan.keep_remote]
        stage = "uploading and committing"
        info = api.create_commit(plan.repo_id, repo_type=plan.repo_type, operations=additions + deletions,
                                 commit_message=plan.commit_message, parent_commit=previous)
    except Exception as err:  # every failure is reported with the remote state
        raise HubPushError(_failure_message(api, plan, stage, previous, err)) from err
    return PushResult(plan.what, plan.repo_id, plan.repo_type, info.oid, previous, str(info.commit_url),
                      uploaded=sorted(local), deleted=[d.path_in_repo for d in deletions])


def _failure_message(api, plan: Plan, stage: str, previous: str | None, err: BaseException) -> str:
    reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
    where = f"push of the {plan.what} to {plan.repo_type} repo {plan.repo_id} failed while {stage} " \
            f"({type(err).__name__}: {reason})"
    try:
        now = _head(api, plan.repo_id, plan.repo_type)
    except Exception:  # the hub may be unreachable: say we could not check
        return f"{where}; could not read the remote head to check it is unchanged"
    if now == previous:
        state = f"at its previous commit {previous[:12]}" if previous else "without any commit of ours"
        return f"{where}; the remote repo is unchanged, {state}"
    return f"{where}; the remote head moved from {previous} to {now} (another writer?)"


__all__ = ["HubPushError", "Plan", "PushResult", "commit_plan"]
