"""Batch scoring, as pure steps over Arrow tables: read an input, check it against the model's
columns, score it in chunks with the model's own scorer, and lay out the output.

Why the rows go through Python dicts: the scorer is the very object /predict uses (compiled linear or
scikit-learn), and it takes the Python values `check_features` makes online (int for int inputs,
float for float inputs, str). `Table.to_pylist` of int64/float64/string columns gives exactly those,
so the same row scores to the same float, bit for bit, online and in batch.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pv
import pyarrow.parquet as pq

from services.serving.domain.model import Column, LoadedModel

PARQUET = "application/vnd.apache.parquet"
CSV = "text/csv"
CHUNK_ROWS = 50_000
ID_COLUMNS = ("application_id",)  # the entity key (feature_repo.names.ENTITY_KEY), carried to the output
_ARROW_TYPES = {"int": pa.int64(), "float": pa.float64(), "str": pa.string()}
_KIND_NAMES = {"int": "integers", "float": "numbers", "str": "strings"}


class BadInput(ValueError):
    """The input cannot be scored by the model; the message says why (shown to the caller as is)."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_input(path: Path, content_type: str, columns: Sequence[Column]) -> pa.Table:
    """The file as a table of the model's columns (typed as the model takes them) and any id column."""
    if path.stat().st_size == 0:
        raise BadInput("the file is empty")
    try:
        if content_type == PARQUET:
            table = pq.read_table(path)
        elif content_type == CSV:
            # Text columns are read as text; numbers are inferred, then cast by `checked`, whose
            # message names the column (Arrow's own conversion error names only its position).
            types = {c.name: pa.string() for c in columns if c.kind == "str"} | dict.fromkeys(
                ID_COLUMNS, pa.string()
            )
            table = pv.read_csv(path, convert_options=pv.ConvertOptions(column_types=types))
        else:
            raise BadInput(f"unsupported content type {content_type!r}: send {PARQUET} or {CSV}")
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError) as exc:
        kind = "Parquet" if content_type == PARQUET else "CSV"
        raise BadInput(f"the file could not be read as {kind}: {_first_line(exc)}") from None
    return checked(table, columns)


def checked(table: pa.Table, columns: Sequence[Column]) -> pa.Table:
    """The model's columns cast to their types (plus id columns); BadInput names every problem:
    missing columns, values of another type, empty or null cells, NaN or infinite numbers."""
    if table.num_rows == 0:
        raise BadInput("the input has no rows")
    missing = [c.name for c in columns if c.name not in table.column_names]
    if missing:
        raise BadInput(f"missing column(s) the model needs: {', '.join(missing)}")
    problems: list[str] = []
    kept: dict[str, pa.ChunkedArray] = {}
    for name in ID_COLUMNS:
        if name in table.column_names:
            kept[name] = table[name].cast(pa.string())
    for column in columns:
        try:
            values = table[column.name].cast(_ARROW_TYPES[column.kind])
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
            got = table.schema.field(column.name).type
            problems.append(f"{column.name}: must hold {_KIND_NAMES[column.kind]}, not {got}")
            continue
        if values.null_count:
            problems.append(f"{column.name}: {values.null_count} empty value(s)")
        elif column.kind == "float" and not pc.all(pc.is_finite(values)).as_py():
            problems.append(f"{column.name}: NaN or infinite value(s)")
        kept[column.name] = values
    if problems:
        raise BadInput("; ".join(problems))
    return pa.table(kept)


def chunks(table: pa.Table, size: int = CHUNK_ROWS) -> Iterator[pa.Table]:
    for offset in range(0, table.num_rows, size):
        yield table.slice(offset, size)


@dataclass(frozen=True)
class ScoredChunk:
    ids: dict[str, list[Any]]
    scores: list[float]
    probabilities: list[float | None]
    decisions: list[str]


def score_chunk(model: LoadedModel, chunk: pa.Table) -> ScoredChunk:
    """One chunk through the model's scorer, as /predict scores its rows; ValueError names the row
    the model could not score (e.g. a category it refuses)."""
    names = list(model.feature_names)
    values = [chunk[name].to_pylist() for name in names]
    rows = [dict(zip(names, row, strict=True)) for row in zip(*values, strict=True)]
    try:
        scores = model.scorer.score(rows)
    except (ValueError, OverflowError) as exc:
        raise BadInput(f"the model cannot score these values: {exc}") from None
    return ScoredChunk(
        {name: chunk[name].to_pylist() for name in ID_COLUMNS if name in chunk.column_names},
        scores,
        [model.probability(s) for s in scores],
        [model.decide(s) for s in scores],
    )


def output_schema(model: LoadedModel, id_columns: Sequence[str], lineage: dict[str, str]) -> pa.Schema:
    """Ids, score (P(bad)), probability (calibrated; null without calibration), decision, model name
    and version; the lineage (input sha256, source) in the file's key-value metadata."""
    fields = [pa.field(name, pa.string()) for name in id_columns]
    fields += [
        pa.field("score", pa.float64(), nullable=False),
        pa.field("probability", pa.float64()),
        pa.field("decision", pa.string(), nullable=False),
        pa.field("model_name", pa.string(), nullable=False),
        pa.field("model_version", pa.string(), nullable=False),
    ]
    metadata = {"model_name": model.name, "model_version": model.version, **lineage}
    return pa.schema(fields, metadata=metadata)


def output_batch(model: LoadedModel, scored: ScoredChunk, schema: pa.Schema) -> pa.RecordBatch:
    size = len(scored.scores)
    arrays = [pa.array(values, pa.string()) for values in scored.ids.values()]
    arrays += [
        pa.array(scored.scores, pa.float64()),
        pa.array(scored.probabilities, pa.float64()),
        pa.array(scored.decisions, pa.string()),
        pa.repeat(pa.scalar(model.name), size),
        pa.repeat(pa.scalar(model.version), size),
    ]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def parquet_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
