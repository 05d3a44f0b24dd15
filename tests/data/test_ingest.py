import pyarrow.compute as pc
import pytest

from mlworkloads.data.errors import DataError
from mlworkloads.data.flights import FLIGHTS_TASK, FLIGHTS_URI
from mlworkloads.data.ingest import IngestConfig, ingest
from mlworkloads.data.report import data_report

CSV = "carrier,arr_delay,distance\nUA,20,1400\nAA,,700\nB6,-3,900\nDL,16,500\n"


@pytest.fixture
def small_csv(tmp_path):
    path = tmp_path / "f.csv"
    path.write_text(CSV)
    return str(path)


def test_ingest_derives_the_label_filters_and_drops_leaking_columns(small_csv):
    table = ingest(
        IngestConfig(
            source_uri=small_csv,
            label_column="late",
            derived_columns={"late": "arr_delay > 15"},
            row_filter="arr_delay.notna()",
            drop_columns=["arr_delay"],
        )
    )
    assert table.column_names == ["carrier", "distance", "late"]
    assert table.column("late").to_pylist() == [True, False, True]


def test_ingest_keeps_max_rows(small_csv):
    assert ingest(IngestConfig(source_uri=small_csv, max_rows=2)).num_rows == 2


def test_ingest_of_the_real_flights_table_drops_only_cancelled_flights(flights_table):
    assert flights_table.num_rows == 327_346  # 336,776 flights less 9,430 without arr_delay
    assert "arr_delay" not in flights_table.column_names
    assert pc.sum(flights_table["late"]).as_py() == 77_630


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"label_column": "late"}, "label_column 'late' is not in the table"),
        ({"drop_columns": ["nope"]}, "drop_columns names ['nope']"),
        ({"derived_columns": {"x": "no_such_column * 2"}}, "derived_columns['x'] = 'no_such_column * 2'"),
        ({"row_filter": "distance +"}, "row_filter 'distance +' cannot be evaluated"),
        ({"row_filter": "distance * 2"}, "must give one true/false per row"),
        ({"row_filter": "distance < 0"}, "no rows"),
        ({"label_column": "arr_delay"}, "is null in 1 of 4 rows"),
        ({"label_column": "carrier", "drop_columns": ["carrier"]}, "also in drop_columns"),
        ({"max_rows": -1}, "max_rows=-1"),
        ({"format": "xlsx"}, "format='xlsx'"),
    ],
)
def test_ingest_refuses_bad_configuration_naming_the_field(small_csv, kwargs, message):
    with pytest.raises(DataError) as err:
        ingest(IngestConfig(source_uri=small_csv, **kwargs))
    assert message in str(err.value)


def test_data_report_lists_rows_types_nulls_and_label_distribution(small_csv):
    table = ingest(
        IngestConfig(source_uri=small_csv, derived_columns={"late": "arr_delay > 15"}, row_filter="arr_delay.notna()")
    )
    report = data_report(table, small_csv, "late")
    assert "**3 rows**, **4 columns**" in report
    assert "| `distance` | int64 | 0 | 500 | 933.3 | 1400 |" in report
    assert "| True | 2 | 66.7% |" in report


def test_the_flights_task_keeps_the_rows_it_promises():
    """The demo's task: rows with an arrival delay, the derived label, the leaking columns gone."""
    table = ingest(IngestConfig(source_uri=FLIGHTS_URI, **FLIGHTS_TASK))
    assert table.num_rows == 327_346 and FLIGHTS_TASK["label_column"] in table.column_names
    assert not set(FLIGHTS_TASK["drop_columns"]) & set(table.column_names)
