"""A local stand-in for the Hugging Face Hub, for tests: stdlib HTTP server on 127.0.0.1, state in memory.

Why: no package implements the Hub's *upload* API, and tests must never touch the network. This server
implements what ``huggingface_hub`` 2.x, ``transformers``, ``peft`` and ``datasets`` call for
``create_repo`` / ``create_commit`` / ``push_to_hub`` / ``from_pretrained`` / ``load_dataset``:

==========================================================  ==============================================
``GET  /api/whoami-v2``                                     the (fake) user and its orgs
``POST /api/repos/create``, ``DELETE /api/repos/delete``    model / dataset / space repos
``POST /api/validate-yaml``                                 README front matter must be a YAML mapping
``GET  /api/{type}s/{repo}[/revision/{rev}]``               repo info: sha, siblings, cardData
``GET  /api/{type}s/{repo}/tree/{rev}[/{path}]``            ?recursive=&expand=; 404 EntryNotFound
``POST /api/{type}s/{repo}/paths-info/{rev}``               form or JSON ``paths`` (+ ``expand``)
``GET  /api/{type}s/{repo}/refs``, ``.../commits/{rev}``    branches, commit history (newest first)
``POST /api/{type}s/{repo}/preupload/{rev}``                upload mode (lfs/regular) + remote oid
``POST /[datasets/]{repo}.git/info/lfs/objects/batch``      LFS batch API, "basic" transfer only
``PUT  /lfs-upload/{sha256}``                               LFS object body (sha256 + size checked)
``POST /api/{type}s/{repo}/commit/{rev}``                   NDJSON: header, file, lfsFile, deleted*
``HEAD|GET /[datasets/]{repo}/resolve/{rev}/{path}``        X-Repo-Commit, ETag, X-Linked-*, Range
==========================================================  ==============================================

Write endpoints need an ``Authorization: Bearer <any token>`` header (401 otherwise), like the Hub.
Every repo keeps a real commit history: a commit is applied to a copy of the parent's file table and the
branch moves only once the whole NDJSON body was validated, so a failed commit leaves the branch at its
previous commit. Tests can make the next N calls of one endpoint fail with :meth:`LocalHub.fail_next`, read
state with :meth:`LocalHub.files` / :meth:`LocalHub.head` / :meth:`LocalHub.commits`, and see every request
in :attr:`LocalHub.requests`. Xet is not implemented: clients must run with ``HF_HUB_DISABLE_XET=1``.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as _dt
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote, unquote, urlsplit

import yaml

USER = "hf-simcit-tester"
ORGS = ("hf-simcit", "test-org")
REPO_TYPES = ("model", "dataset", "space")
# Files stored as LFS objects, as the Hub's default .gitattributes says (plus any binary or >= 10 MB file).
LFS_SUFFIXES = (
    ".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".h5", ".msgpack", ".onnx", ".gguf", ".parquet", ".arrow",
    ".npy", ".npz", ".pkl", ".pickle", ".zip", ".gz", ".tar", ".zst", ".model", ".png", ".jpg", ".wav",
)
LFS_THRESHOLD = 10 * 1024 * 1024
GITATTRIBUTES = "".join(f"*{suffix} filter=lfs diff=lfs merge=lfs -text\n" for suffix in LFS_SUFFIXES)
# Endpoints that change state: like the Hub, they need "Authorization: Bearer <token>" (any token here).
WRITES = ("create_repo", "delete_repo", "preupload", "lfs_batch", "commit", "create_branch")
FAILABLE = ("create_repo", "preupload", "lfs_batch", "lfs_upload", "commit", "resolve", "repo_info", "tree",
            "paths_info")


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def git_blob_oid(content: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


@dataclass(frozen=True)
class StoredFile:
    """One file of a commit; ``lfs`` files carry their content's sha256 and a pointer-based git oid."""

    content: bytes
    lfs: bool

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()

    @property
    def oid(self) -> str:
        if self.lfs:
            return git_blob_oid(lfs_pointer(self.sha256, len(self.content)))
        return git_blob_oid(self.content)

    def tree_entry(self, path: str, last_commit: Commit | None = None) -> dict:
        entry = {"type": "file", "oid": self.oid, "size": len(self.content), "path": path}
        if self.lfs:
            entry["lfs"] = {"oid": self.sha256, "size": len(self.content),
                            "pointerSize": len(lfs_pointer(self.sha256, len(self.content)))}
        if last_commit is not None:
            entry["lastCommit"] = last_commit.summary()
        return entry


@dataclass
class Commit:
    oid: str
    parent: str | None
    title: str
    message: str
    date: str
    files: dict[str, StoredFile]

    def summary(self) -> dict:
        return {"id": self.oid, "title": self.title, "date": self.date}


@dataclass
class Repo:
    repo_type: str
    repo_id: str
    private: bool
    created_at: str
    commits: dict[str, Commit] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)

    def resolve(self, revision: str) -> Commit | None:
        revision = unquote(revision)
        for prefix in ("refs/heads/", "refs/tags/"):
            revision = revision.removeprefix(prefix)
        oid = self.branches.get(revision) or self.tags.get(revision)
        if oid is None and revision in self.commits:
            oid = revision
        if oid is None and len(revision) >= 7:  # abbreviated commit sha
            matches = [c for c in self.commits if c.startswith(revision)]
            oid = matches[0] if len(matches) == 1 else None
        return self.commits.get(oid) if oid else None

    def history(self, commit: Commit) -> list[Commit]:
        out = []
        node: Commit | None = commit
        while node is not None:
            out.append(node)
            node = self.commits.get(node.parent) if node.parent else None
        return out

    def last_commit_of(self, commit: Commit, path: str) -> Commit:
        """The newest commit in ``commit``'s history that changed ``path`` (a file or folder prefix)."""
        def state(c: Commit | None) -> tuple:
            if c is None:
                return ()
            return tuple(sorted((p, f.oid) for p, f in c.files.items() if p == path or p.startswith(path + "/")))

        chain = self.history(commit)
        for node, parent in zip(chain, chain[1:] + [None]):
            if state(node) != state(parent):
                return node
        return chain[-1]


class HubError(Exception):
    """An HTTP error answer: status, Hub error code (X-Error-Code) and message."""

    def __init__(self, status: int, message: str, code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


class LocalHub:
    """The server's state and control surface for tests. ``LocalHub().start()`` then use :attr:`endpoint`."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        self.repos: dict[tuple[str, str], Repo] = {}
        self.lfs_objects: dict[str, bytes] = {}
        self.requests: list[tuple[str, str]] = []
        self.unhandled: list[tuple[str, str]] = []
        self._failures: dict[str, list[int | None]] = {}  # None: let that call pass
        self._counter = 0
        self.lock = threading.RLock()
        self.httpd = ThreadingHTTPServer((host, port), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.hub = self  # type: ignore[attr-defined]
        self._thread: threading.Thread | None = None

    # ----------------------------------------------------------------------------------------- lifecycle
    @property
    def endpoint(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> LocalHub:
        if self._thread is None:
            self._thread = threading.Thread(target=self.httpd.serve_forever, name="local-hub", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self.httpd.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self.httpd.server_close()

    def __enter__(self) -> LocalHub:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -------------------------------------------------------------------------------------- test helpers
    def fail_next(self, what: str, status: int = 500, times: int = 1, after: int = 0) -> None:
        """Let ``after`` calls of endpoint ``what`` (one of :data:`FAILABLE`) pass, then fail ``times`` with ``status``."""
        if what not in FAILABLE:
            raise ValueError(f"unknown endpoint {what!r}; one of {FAILABLE}")
        with self.lock:
            self._failures.setdefault(what, []).extend([None] * after + [status] * times)

    def clear_failures(self) -> None:
        with self.lock:
            self._failures.clear()

    def _maybe_fail(self, what: str) -> None:
        with self.lock:
            pending = self._failures.get(what)
            status = pending.pop(0) if pending else None
        if status is not None:
            raise HubError(status, f"injected failure of {what} (LocalHub.fail_next)")

    def repo(self, repo_id: str, repo_type: str = "model") -> Repo:
        try:
            return self.repos[(repo_type, repo_id)]
        except KeyError:
            raise KeyError(f"no {repo_type} repo {repo_id!r} on the local hub") from None

    def head(self, repo_id: str, repo_type: str = "model", branch: str = "main") -> str:
        return self.repo(repo_id, repo_type).branches[branch]

    def commits(self, repo_id: str, repo_type: str = "model", revision: str = "main") -> list[Commit]:
        """Newest first."""
        repo = self.repo(repo_id, repo_type)
        return repo.history(repo.resolve(revision))

    def files(self, repo_id: str, repo_type: str = "model", revision: str = "main") -> dict[str, bytes]:
        commit = self.repo(repo_id, repo_type).resolve(revision)
        return {path: f.content for path, f in commit.files.items()}

    # ------------------------------------------------------------------------------------- repo actions
    def _new_oid(self, *parts: object) -> str:
        self._counter += 1
        return hashlib.sha1(json.dumps([self._counter, *map(str, parts)]).encode()).hexdigest()

    def create_repo(self, repo_type: str, repo_id: str, private: bool = False) -> Repo:
        with self.lock:
            if (repo_type, repo_id) in self.repos:
                raise HubError(409, f"You already created this {repo_type} repo", code=None)
            repo = Repo(repo_type, repo_id, private, _now())
            files = {".gitattributes": StoredFile(GITATTRIBUTES.encode(), lfs=False)}
            first = Commit(self._new_oid(repo_id, "initial"), None, "initial commit", "", _now(), files)
            repo.commits[first.oid] = first
            repo.branches["main"] = first.oid
            self.repos[(repo_type, repo_id)] = repo
            return repo

    def commit(self, repo: Repo, revision: str, lines: list[dict]) -> Commit:
        """Apply an NDJSON commit body atomically: validate everything, then move the branch."""
        branch = unquote(revision).removeprefix("refs/heads/")
        with self.lock:
            if branch not in repo.branches:
                raise HubError(404, f"Invalid rev id: {branch}", code="RevisionNotFound")
            parent = repo.commits[repo.branches[branch]]
            if not lines or lines[0].get("key") != "header":
                raise HubError(400, "commit payload must start with a header line")
            header = lines[0]["value"]
            expected_parent = header.get("parentCommit")
            if expected_parent and expected_parent != parent.oid:
                raise HubError(412, f"parentCommit {expected_parent} is not the head of {branch} ({parent.oid})")
            files = dict(parent.files)
            for line in lines[1:]:
                key, value = line.get("key"), line.get("value", {})
                path = value.get("path", "")
                if not path or path.startswith("/") or ".." in path.split("/"):
                    raise HubError(400, f"invalid path in commit: {path!r}")
                if key == "file":
                    if value.get("encoding", "base64") != "base64":
                        raise HubError(400, f"unsupported encoding for {path}")
                    content = base64.b64decode(value["content"])
                    files[path] = StoredFile(content, lfs=False)
                elif key == "lfsFile":
                    blob = self.lfs_objects.get(value.get("oid", ""))
                    if blob is None:
                        raise HubError(422, f"LFS object {value.get('oid')} for {path} was never uploaded")
                    if value.get("size") is not None and int(value["size"]) != len(blob):
                        raise HubError(422, f"LFS object for {path}: size {value['size']} != stored {len(blob)}")
                    files[path] = StoredFile(blob, lfs=True)
                elif key == "deletedFile":
                    if path not in files:
                        raise HubError(404, f"A file with this name doesn't exist: {path}", code="EntryNotFound")
                    del files[path]
                elif key == "deletedFolder":
                    prefix = path.rstrip("/") + "/"
                    for existing in [p for p in files if p.startswith(prefix)]:
                        del files[existing]
                else:
                    raise HubError(400, f"unknown commit operation {key!r}")
            title = header.get("summary") or "Upload files"
            commit = Commit(self._new_oid(repo.repo_id, parent.oid, title), parent.oid, title,
                            header.get("description", ""), _now(), files)
            repo.commits[commit.oid] = commit
            repo.branches[branch] = commit.oid
            return commit

    # ----------------------------------------------------------------------------------- serialisation
    def repo_info(self, repo: Repo, commit: Commit) -> dict:
        card_data = None
        readme = commit.files.get("README.md")
        if readme is not None:
            card_data = _front_matter(readme.content.decode("utf-8", "replace"))
        siblings = []
        for path, f in sorted(commit.files.items()):
            sibling = {"rfilename": path, "size": len(f.content), "blobId": f.oid}
            if f.lfs:
                sibling["lfs"] = {"sha256": f.sha256, "size": len(f.content),
                                  "pointerSize": len(lfs_pointer(f.sha256, len(f.content)))}
            siblings.append(sibling)
        author = repo.repo_id.split("/")[0] if "/" in repo.repo_id else USER
        info = {
            "_id": hashlib.sha1(repo.repo_id.encode()).hexdigest()[:24], "id": repo.repo_id, "author": author,
            "sha": commit.oid, "lastModified": commit.date, "createdAt": repo.created_at,
            "private": repo.private, "gated": False, "disabled": False, "downloads": 0, "likes": 0,
            "tags": list((card_data or {}).get("tags") or []), "siblings": siblings, "cardData": card_data,
        }
        if repo.repo_type == "model":
            info["library_name"] = (card_data or {}).get("library_name")
            info["modelId"] = repo.repo_id
            config = commit.files.get("config.json")
            if config is not None:
                with contextlib.suppress(ValueError):
                    info["config"] = json.loads(config.content)
            if card_data and "model-index" in card_data:
                info["model-index"] = card_data["model-index"]
        return info


def _front_matter(text: str) -> dict | None:
    match = re.match(r"^---\s*\n(.*?)\n---\s*(\n|$)", text, flags=re.S)
    if not match:
        return None
    data = yaml.safe_load(match.group(1))
    return data if isinstance(data, dict) else None


# Route patterns on the raw (still %-quoted) path; repo ids are "namespace/name".
_REPO = r"(?P<repo>[^/]+/[^/]+)"
_TYPE = r"(?P<type>models|datasets|spaces)"
ROUTES = [
    ("GET", re.compile(r"^/api/whoami(-v2)?$"), "whoami"),
    ("POST", re.compile(r"^/api/repos/create$"), "create_repo"),
    ("DELETE", re.compile(r"^/api/repos/delete$"), "delete_repo"),
    ("POST", re.compile(r"^/api/validate-yaml$"), "validate_yaml"),
    ("POST", re.compile(rf"^/api/{_TYPE}/{_REPO}/preupload/(?P<rev>[^/]+)$"), "preupload"),
    ("POST", re.compile(rf"^/api/{_TYPE}/{_REPO}/commit/(?P<rev>[^/]+)$"), "commit"),
    ("GET", re.compile(rf"^/api/{_TYPE}/{_REPO}/tree/(?P<rev>[^/]+)(?:/(?P<path>.*))?$"), "tree"),
    ("POST", re.compile(rf"^/api/{_TYPE}/{_REPO}/paths-info/(?P<rev>[^/]+)$"), "paths_info"),
    ("GET", re.compile(rf"^/api/{_TYPE}/{_REPO}/refs$"), "refs"),
    ("GET", re.compile(rf"^/api/{_TYPE}/{_REPO}/commits/(?P<rev>[^/]+)$"), "list_commits"),
    ("POST", re.compile(rf"^/api/{_TYPE}/{_REPO}/branch/(?P<rev>[^/]+)$"), "create_branch"),
    ("GET", re.compile(rf"^/api/{_TYPE}/{_REPO}/revision/(?P<rev>[^/]+)$"), "repo_info"),
    ("GET", re.compile(rf"^/api/{_TYPE}/{_REPO}$"), "repo_info"),
    ("POST", re.compile(r"^/(?:(?P<type>datasets|spaces)/)?(?P<repo>[^/]+/[^/]+?)\.git/info/lfs/objects/batch$"),
     "lfs_batch"),
    ("PUT", re.compile(r"^/lfs-upload/(?P<oid>[0-9a-f]{64})$"), "lfs_upload"),
    ("GET", re.compile(r"^/(?:(?P<type>datasets|spaces)/)?(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<path>.+)$"),
     "resolve"),
    ("HEAD", re.compile(r"^/(?:(?P<type>datasets|spaces)/)?(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<path>.+)$"),
     "resolve"),
]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "LocalHub/1.0"

    def log_message(self, format, *args):  # noqa: A002 - silence the default stderr access log
        return

    @property
    def hub(self) -> LocalHub:
        return self.server.hub  # type: ignore[attr-defined]

    # ----------------------------------------------------------------------------------------- plumbing
    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, body: bytes = b"", headers: dict | None = None,
              content_type: str = "application/json", head_only: bool = False,
              content_length: int | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body) if content_length is None else content_length))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if not head_only and body:
            self.wfile.write(body)

    def _json(self, status: int, payload, headers: dict | None = None) -> None:
        self._send(status, json.dumps(payload).encode(), headers)

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        self.query = parse_qs(url.query)
        self.hub.requests.append((method, self.path))
        body = self._body() if method in ("POST", "PUT", "DELETE") else b""
        for route_method, pattern, name in ROUTES:
            if route_method != method:
                continue
            match = pattern.match(url.path)
            if match is None:
                continue
            params = {k: unquote(v) for k, v in match.groupdict().items() if v is not None}
            try:
                if name in WRITES and not self.headers.get("Authorization", "").startswith("Bearer "):
                    raise HubError(401, "Invalid credentials in Authorization header: write access needs a token")
                if name in FAILABLE:
                    self.hub._maybe_fail(name)
                getattr(self, f"h_{name}")(body=body, head_only=(method == "HEAD"), **params)
            except HubError as err:
                headers = {"X-Error-Message": err.message.splitlines()[0][:200]}
                if err.code:
                    headers["X-Error-Code"] = err.code
                payload = json.dumps({"error": err.message}).encode()
                self._send(err.status, payload, headers, head_only=(method == "HEAD"))
            return
        self.hub.unhandled.append((method, self.path))
        self._send(404, json.dumps({"error": f"LocalHub: no route for {method} {url.path}"}).encode(),
                   {"X-Error-Message": "no route"}, head_only=(method == "HEAD"))

    def do_GET(self):
        self._dispatch("GET")

    def do_HEAD(self):
        self._dispatch("HEAD")

    def do_POST(self):
        self._dispatch("POST")

    def do_PUT(self):
        self._dispatch("PUT")

    def do_DELETE(self):
        self._dispatch("DELETE")

    # ------------------------------------------------------------------------------------------ helpers
    def _repo(self, type: str | None, repo: str) -> Repo:  # noqa: A002
        repo_type = (type or "models").rstrip("s")
        found = self.hub.repos.get((repo_type, repo))
        if found is None:
            raise HubError(404, f"Repository Not Found: {repo_type} {repo}", code="RepoNotFound")
        return found

    def _commit(self, repo: Repo, rev: str) -> Commit:
        commit = repo.resolve(rev)
        if commit is None:
            raise HubError(404, f"Invalid rev id: {rev}", code="RevisionNotFound")
        return commit

    def _flag(self, name: str, form: dict | None = None) -> bool:
        values = (form or self.query).get(name) or ["false"]
        return str(values[0]).lower() in ("1", "true", "yes")

    def _entries(self, repo: Repo, commit: Commit, prefix: str, recursive: bool, expand: bool) -> list[dict]:
        prefix = prefix.strip("/")
        base = prefix + "/" if prefix else ""
        entries: dict[str, dict] = {}
        for path, f in sorted(commit.files.items()):
            if not path.startswith(base):
                continue
            rest = path[len(base):]
            parts = rest.split("/")
            if recursive:  # every parent folder of the file
                folders = ["/".join(parts[:i]) for i in range(1, len(parts))]
            else:  # only the top-level folder it lies in
                folders = parts[:1] if len(parts) > 1 else []
            for folder in folders:
                folder_path = base + folder
                if folder_path not in entries:
                    entries[folder_path] = self._folder_entry(repo, commit, folder_path, expand)
            if recursive or len(parts) == 1:
                entries[path] = f.tree_entry(path, repo.last_commit_of(commit, path) if expand else None)
        return list(entries.values())

    def _folder_entry(self, repo: Repo, commit: Commit, path: str, expand: bool) -> dict:
        listing = sorted((p, f.oid) for p, f in commit.files.items() if p.startswith(path + "/"))
        entry = {"type": "directory", "oid": hashlib.sha1(json.dumps(listing).encode()).hexdigest(), "size": 0,
                 "path": path}
        if expand:
            entry["lastCommit"] = repo.last_commit_of(commit, path).summary()
        return entry

    def _url_prefix(self, repo: Repo) -> str:
        return "" if repo.repo_type == "model" else f"{repo.repo_type}s/"

    # ----------------------------------------------------------------------------------------- handlers
    def h_whoami(self, **_):
        self._json(200, {
            "type": "user", "id": "0" * 24, "name": USER, "fullname": "hf-simcit test user",
            "email": f"{USER}@localhost", "emailVerified": True, "isPro": False, "canPay": False,
            "orgs": [{"type": "org", "name": org, "fullname": org, "roleInOrg": "admin"} for org in ORGS],
            "auth": {"type": "access_token", "accessToken": {"displayName": "local", "role": "write"}},
        })

    def h_create_repo(self, body: bytes, **_):
        payload = json.loads(body or b"{}")
        name = payload.get("name")
        if not name or "/" in name:
            raise HubError(400, f"invalid repo name {name!r}")
        namespace = payload.get("organization") or USER
        repo_type = payload.get("type") or "model"
        if repo_type not in REPO_TYPES:
            raise HubError(400, f"invalid repo type {repo_type!r}")
        repo_id = f"{namespace}/{name}"
        private = payload.get("visibility") == "private" or bool(payload.get("private"))
        prefix = "" if repo_type == "model" else f"{repo_type}s/"
        url = f"{self.hub.endpoint}/{prefix}{repo_id}"
        try:
            self.hub.create_repo(repo_type, repo_id, private)
        except HubError as err:
            if err.status == 409:
                self._json(409, {"error": err.message, "url": url})
                return
            raise
        self._json(200, {"url": url, "name": repo_id, "id": repo_id})

    def h_delete_repo(self, body: bytes, **_):
        payload = json.loads(body or b"{}")
        repo_id = f"{payload.get('organization') or USER}/{payload.get('name')}"
        key = (payload.get("type") or "model", repo_id)
        with self.hub.lock:
            if key not in self.hub.repos:
                raise HubError(404, f"Repository Not Found: {repo_id}", code="RepoNotFound")
            del self.hub.repos[key]
        self._json(200, {})

    def h_validate_yaml(self, body: bytes, **_):
        payload = json.loads(body or b"{}")
        content = payload.get("content", "")
        try:
            _front_matter(content)
        except yaml.YAMLError as err:
            self._json(400, {"errors": [{"message": f"invalid YAML: {err}"}], "warnings": []})
            return
        self._json(200, {"errors": [], "warnings": []})

    def h_repo_info(self, type: str, repo: str, rev: str = "main", **_):  # noqa: A002
        found = self._repo(type, repo)
        self._json(200, self.hub.repo_info(found, self._commit(found, rev)))

    def h_tree(self, type: str, repo: str, rev: str, path: str = "", **_):  # noqa: A002
        found = self._repo(type, repo)
        commit = self._commit(found, rev)
        path = path.strip("/")
        if path and path in commit.files:  # the Hub answers a file path with the file itself
            raise HubError(404, f"{path} is a file, not a folder", code="EntryNotFound")
        if path and not any(p.startswith(path + "/") for p in commit.files):
            raise HubError(404, f"Entry not found: {path}", code="EntryNotFound")
        self._json(200, self._entries(found, commit, path, self._flag("recursive"), self._flag("expand")))

    def h_paths_info(self, type: str, repo: str, rev: str, body: bytes, **_):  # noqa: A002
        found = self._repo(type, repo)
        commit = self._commit(found, rev)
        if self.headers.get("Content-Type", "").startswith("application/json"):
            payload = json.loads(body or b"{}")
            paths, form = payload.get("paths", []), {"expand": [payload.get("expand", False)]}
        else:
            form = parse_qs(body.decode())
            paths = form.get("paths", [])
        paths = [paths] if isinstance(paths, str) else paths
        expand = self._flag("expand", form)
        out = []
        for path in paths:
            path = path.strip("/")
            if path in commit.files:
                out.append(commit.files[path].tree_entry(
                    path, found.last_commit_of(commit, path) if expand else None))
            elif any(p.startswith(path + "/") for p in commit.files):
                out.append(self._folder_entry(found, commit, path, expand))
        self._json(200, out)

    def h_refs(self, type: str, repo: str, **_):  # noqa: A002
        found = self._repo(type, repo)
        self._json(200, {
            "branches": [{"name": b, "ref": f"refs/heads/{b}", "targetCommit": o} for b, o in found.branches.items()],
            "tags": [{"name": t, "ref": f"refs/tags/{t}", "targetCommit": o} for t, o in found.tags.items()],
            "converts": [], "pullRequests": [],
        })

    def h_list_commits(self, type: str, repo: str, rev: str, **_):  # noqa: A002
        found = self._repo(type, repo)
        self._json(200, [{"id": c.oid, "title": c.title, "message": c.message, "date": c.date,
                          "authors": [{"user": USER}]} for c in found.history(self._commit(found, rev))])

    def h_create_branch(self, type: str, repo: str, rev: str, body: bytes, **_):  # noqa: A002
        found = self._repo(type, repo)
        payload = json.loads(body or b"{}")
        with self.hub.lock:
            if rev in found.branches:
                raise HubError(409, f"Reference already exists: {rev}")
            start = self._commit(found, payload.get("startingPoint") or "main")
            found.branches[rev] = start.oid
        self._json(200, {})

    def h_preupload(self, type: str, repo: str, rev: str, body: bytes, **_):  # noqa: A002
        found = self._repo(type, repo)
        commit = self._commit(found, rev)
        files = []
        for item in json.loads(body or b"{}").get("files", []):
            path, size = item["path"], int(item.get("size", 0))
            sample = base64.b64decode(item.get("sample", ""))
            lfs = path.lower().endswith(LFS_SUFFIXES) or size >= LFS_THRESHOLD or b"\0" in sample
            existing = commit.files.get(path)
            remote_oid = None
            if existing is not None:
                remote_oid = existing.sha256 if existing.lfs else git_blob_oid(existing.content)
            files.append({"path": path, "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False,
                          "oid": remote_oid})
        self._json(200, {"files": files, "commitOid": commit.oid})

    def h_lfs_batch(self, repo: str, body: bytes, type: str | None = None, **_):  # noqa: A002
        self._repo(type, repo)
        payload = json.loads(body or b"{}")
        if payload.get("operation") != "upload":
            raise HubError(400, "LocalHub only implements LFS uploads through the batch API")
        objects = []
        for obj in payload.get("objects", []):
            oid, size = obj["oid"], int(obj["size"])
            entry = {"oid": oid, "size": size, "authenticated": True}
            if oid not in self.hub.lfs_objects:
                entry["actions"] = {"upload": {"href": f"{self.hub.endpoint}/lfs-upload/{oid}?size={size}",
                                               "header": {}}}
            objects.append(entry)
        self._send(200, json.dumps({"transfer": "basic", "objects": objects}).encode(),
                   content_type="application/vnd.git-lfs+json")

    def h_lfs_upload(self, oid: str, body: bytes, **_):
        expected_size = int((self.query.get("size") or [len(body)])[0])
        if hashlib.sha256(body).hexdigest() != oid or len(body) != expected_size:
            raise HubError(400, f"LFS object {oid}: content does not match its sha256/size")
        with self.hub.lock:
            self.hub.lfs_objects[oid] = body
        self._send(200, b"", content_type="text/plain")

    def h_commit(self, type: str, repo: str, rev: str, body: bytes, **_):  # noqa: A002
        found = self._repo(type, repo)
        if self.query.get("create_pr"):
            raise HubError(400, "LocalHub does not implement pull requests (create_pr)")
        try:
            lines = [json.loads(line) for line in body.splitlines() if line.strip()]
        except ValueError as err:
            raise HubError(400, f"commit body is not NDJSON: {err}") from err
        commit = self.hub.commit(found, rev, lines)
        url = f"{self.hub.endpoint}/{self._url_prefix(found)}{found.repo_id}/commit/{commit.oid}"
        self._json(200, {"success": True, "commitOid": commit.oid, "commitUrl": url, "hookOutput": "",
                         "pullRequestUrl": None})

    def h_resolve(self, repo: str, rev: str, path: str, head_only: bool, type: str | None = None, **_):  # noqa: A002
        found = self._repo(type, repo)
        commit = self._commit(found, rev)
        stored = commit.files.get(path)
        if stored is None:
            raise HubError(404, f"Entry not found: {path}", code="EntryNotFound")
        content = stored.content
        etag = f'"{stored.sha256 if stored.lfs else stored.oid}"'
        headers = {"X-Repo-Commit": commit.oid, "ETag": etag, "Accept-Ranges": "bytes"}
        if stored.lfs:
            headers.update({"X-Linked-Etag": etag, "X-Linked-Size": str(len(content))})
        status = 200
        range_header = self.headers.get("Range")
        if range_header and not head_only:
            match = re.fullmatch(r"bytes=(\d*)-(\d*)", range_header.strip())
            if match is None:
                raise HubError(416, f"bad Range header {range_header!r}")
            start_s, end_s = match.groups()
            if start_s == "":  # suffix range: last N bytes
                start, end = max(0, len(content) - int(end_s)), len(content) - 1
            else:
                start = int(start_s)
                end = min(int(end_s), len(content) - 1) if end_s else len(content) - 1
            if start >= len(content) and len(content) > 0 or start > end + 1:
                self._send(416, b"", {"Content-Range": f"bytes */{len(content)}", **headers})
                return
            headers["Content-Range"] = f"bytes {start}-{end}/{len(content)}"
            content, status = content[start:end + 1], 206
        self._send(status, content, headers, content_type="application/octet-stream", head_only=head_only)


def hub_url(endpoint: str, repo_id: str, filename: str, repo_type: str = "model", revision: str = "main") -> str:
    """Download URL of one file, like ``huggingface_hub.hf_hub_url`` (handy for raw HTTP assertions)."""
    prefix = "" if repo_type == "model" else f"{repo_type}s/"
    return f"{endpoint}/{prefix}{repo_id}/resolve/{quote(revision, safe='')}/{quote(filename)}"
