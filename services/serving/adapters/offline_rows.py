"""A time range of the offline store (the directory of Parquet parts the features service appends to),
for batch scoring. Read under the offline lock held shared, as training reads it, so no merge of parts
deletes one under the read (feature_repo.offline)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from feature_repo.names import EVENT_TIME
from feature_repo.store import offline_lock
from services.serving.domain.batch import BadInput


def rows_between(offline_path: Path, start: datetime, end: datetime) -> pa.Table:
    """Rows with start <= event time < end, each once, in the store's order (parts by key: append order,
    except that a merged part takes its oldest input's place); BadInput when there are none."""
    if not offline_path.exists():
        raise BadInput(f"no data in the offline store between {start.isoformat()} and {end.isoformat()}")
    with offline_lock(offline_path, exclusive=False):
        table = pq.read_table(offline_path)
    if not pa.types.is_timestamp(table.schema.field(EVENT_TIME).type):
        raise BadInput(f"the offline store's {EVENT_TIME} column is not a timestamp")
    # In microseconds, whatever the file's unit: every datetime (years 1 to 9999) fits, so no range
    # asked for can overflow the comparison (nanoseconds end in 2262).
    micros = pa.timestamp("us", tz="UTC")
    times = table[EVENT_TIME].cast(micros, safe=False)
    inside = pc.and_(
        pc.greater_equal(times, pa.scalar(start, micros)), pc.less(times, pa.scalar(end, micros))
    )
    selected = table.filter(inside)
    if selected.num_rows == 0:
        raise BadInput(f"no data in the offline store between {start.isoformat()} and {end.isoformat()}")
    return distinct_rows(selected)


def distinct_rows(table: pa.Table) -> pa.Table:
    """Each row once, the first of its copies, in order. The offline store is at-least-once: a batch
    in flight when a features instance dies is pushed again by whichever instance takes its partition
    over, as identical rows (same entity, time and values); scored twice, they would be billed twice."""
    first = table.append_column("_row", pa.array(range(table.num_rows), pa.int64()))
    keep = first.group_by(table.column_names, use_threads=False).aggregate([("_row", "min")])
    order = pc.sort_indices(keep["_row_min"])
    return table.take(pc.take(keep["_row_min"], order))
