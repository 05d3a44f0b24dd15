"""Data path: ingest -> split -> preprocess of the flights table against a bare pyarrow CSV read.

Run: .venv/bin/python bench/data.py [--smoke]
"""

from __future__ import annotations

import os
import sys
import tempfile
import zipfile

sys.path.insert(0, os.path.dirname(__file__))
from _common import Report, best_of, parser, run_child  # noqa: E402

CHILD = r"""
import json, resource, sys, time
mode, path, rows = sys.argv[1], sys.argv[2], int(sys.argv[3])
import pyarrow as pa, pyarrow.csv as pacsv
from mlworkloads.data import preprocessor as pre
from mlworkloads.data.flights import FLIGHTS_TASK
from mlworkloads.data.ingest import IngestConfig, ingest
from mlworkloads.data.split import split_table
baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
started = time.perf_counter()
if mode == "bare":
    table = pacsv.read_csv(path)
    size = table.nbytes
else:
    table = ingest(IngestConfig(source_uri=path, **FLIGHTS_TASK))
    parts = split_table(table, "late", seed=0)
    fitted = pre.fit(parts["train"], pre.PreprocessorOptions(label_column="late", categorical_columns=["flight"]))
    for part in parts.values():
        fitted.transform(part); fitted.encode_labels(part["late"])
    size = table.nbytes
elapsed = time.perf_counter() - started
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"seconds": elapsed, "peak_bytes": peak - baseline, "table_bytes": size}))
"""


def _write_csv(source_zip: str, directory: str, copies: int, max_rows: int | None) -> str:
    with zipfile.ZipFile(source_zip) as archive:
        text = archive.read("flights.csv").decode()
    header, _, body = text.partition("\n")
    lines = body.splitlines()[: max_rows or None]
    path = os.path.join(directory, f"flights-x{copies}.csv")
    with open(path, "w") as f:
        f.write(header + "\n")
        for _ in range(copies):
            f.write("\n".join(lines) + "\n")
    return path


def main() -> int:
    args = parser(__doc__).parse_args()
    from mlworkloads.data.flights import flights_path

    report = Report(args.smoke)
    rows = 20_000 if args.smoke else None
    with tempfile.TemporaryDirectory() as tmp:
        one = _write_csv(flights_path(), tmp, 1, rows)
        bare = min((run_child(CHILD, "bare", one, "0") for _ in range(3)), key=lambda r: r["seconds"])
        ours = min((run_child(CHILD, "ours", one, "0") for _ in range(3)), key=lambda r: r["seconds"])
        ten = _write_csv(flights_path(), tmp, 10, rows)
        ours10 = min((run_child(CHILD, "ours", ten, "0") for _ in range(3)), key=lambda r: r["seconds"])
    time_ratio = ours["seconds"] / bare["seconds"]
    memory_ratio = ours["peak_bytes"] / ours["table_bytes"]
    growth = ours10["seconds"] / ours["seconds"]

    from mlworkloads.data import preprocessor as pre
    from mlworkloads.data.flights import FLIGHTS_TASK, FLIGHTS_URI
    from mlworkloads.data.ingest import IngestConfig, ingest

    table = ingest(IngestConfig(source_uri=FLIGHTS_URI, max_rows=20_000, **FLIGHTS_TASK))
    fitted = pre.fit(table, pre.PreprocessorOptions(label_column="late", categorical_columns=["flight"]))
    one_row = table.slice(0, 1)
    rows_10k = table.slice(0, 10_000)
    per_row = best_of(lambda: [fitted.transform(one_row) for _ in range(1000)]) / 1000
    per_10k = best_of(lambda: fitted.transform(rows_10k))

    report.figure("data.bare_read_seconds", bare["seconds"])
    report.figure("data.pipeline_seconds", ours["seconds"])
    report.figure("data.time_vs_bare_read", time_ratio, "<= 3x", time_ratio <= 3)
    report.figure("data.peak_memory_vs_table", memory_ratio, "<= 5x", memory_ratio <= 5)
    report.figure("data.time_growth_for_10x_rows", growth, "<= 12x", growth <= 12)
    report.figure("data.transform_1_row_us", per_row * 1e6, "serving hot path, no target")
    report.figure("data.transform_10k_rows_ms", per_10k * 1e3, "no target")
    return report.finish()


if __name__ == "__main__":
    sys.exit(main())
