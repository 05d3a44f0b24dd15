"""training/predictions.py: any model's predictions table read for scoring, bad tables refused by name."""

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from mlworkloads.data.errors import DataError
from mlworkloads.training.predictions import predictions_table, read_predictions, read_table


def test_a_classifiers_probabilities_give_the_task_classes_and_encoded_labels():
    table = pa.table(
        {
            "label": [2, 0, 1],
            "predicted_class": ["2", "0", "2"],
            "probability_0": [0.1, 0.8, 0.1],
            "probability_1": [0.1, 0.1, 0.3],
            "probability_2": [0.8, 0.1, 0.6],
        }
    )
    scored = read_predictions(table)
    assert (scored.task, scored.classes) == ("multiclass", ["0", "1", "2"])
    assert scored.labels.tolist() == [2, 0, 1] and scored.scores.shape == (3, 3)


def test_a_binary_score_column_is_the_second_sorted_labels_probability():
    scored = read_predictions(pa.table({"y": ["spam", "ham", "spam"], "score": [0.9, 0.2, 0.4]}), label_column="y")
    assert (scored.task, scored.classes) == ("binary", ["ham", "spam"])
    assert scored.labels.tolist() == [1, 0, 1]
    assert np.allclose(scored.scores, [[0.1, 0.9], [0.8, 0.2], [0.6, 0.4]])


def test_a_regressions_prediction_column_is_read_as_values():
    scored = read_predictions(pa.table({"label": [1.5, 2.0], "prediction": [1.4, 2.2]}))
    assert scored.task == "regression" and scored.classes is None
    assert scored.labels.tolist() == [1.5, 2.0] and scored.scores.tolist() == [1.4, 2.2]


def test_the_table_written_for_a_model_reads_back_as_its_scores():
    scores = np.array([[0.3, 0.7], [0.9, 0.1]])
    table = predictions_table("binary", [False, True], scores, labels=pa.array(["True", "False"]))
    scored = read_predictions(table)
    assert scored.classes == ["False", "True"] and scored.labels.tolist() == [1, 0]
    assert np.array_equal(scored.scores, scores)


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        ({"target": [1], "score": [0.5]}, "has no label column 'label'; its columns are ['target', 'score']"),
        ({"label": ["a", None], "score": [0.5, 0.5]}, "the label 'label' is missing in row 1"),
        ({"label": ["a", "b"]}, "has none of 'prediction', probability_<class> or 'score' columns"),
        ({"label": ["a", "b", "c"], "score": [0.1, 0.2, 0.3]}, "but the label has 3 values"),
        ({"label": ["a", "b"], "score": ["high", "low"]}, "column 'score' must hold numbers, not string"),
        (
            {"label": [1.0, 2.0], "prediction": [1.0, float("nan")]},
            "column 'prediction' is missing or not finite in row 1",
        ),
        ({"label": ["a", "b"], "probability_a": [0.5, 1.5], "probability_b": [0.5, 0.5]}, "must lie in [0, 1]"),
        ({"label": ["a", "c"], "probability_a": [0.5, 0.5], "probability_b": [0.5, 0.5]}, "label values ['c'] have no"),
    ],
    ids=["no-label", "null-label", "nothing-to-score", "score-three-classes", "text-score", "nan", "range", "unknown"],
)
def test_a_table_that_cannot_be_scored_is_refused_naming_the_column_or_row(columns, message):
    with pytest.raises(DataError) as err:
        read_predictions(pa.table(columns), source="preds.csv")
    assert str(err.value).startswith("preds.csv")
    assert message in str(err.value)


def test_a_task_that_does_not_match_the_columns_is_refused():
    with pytest.raises(DataError, match="a regression's table needs a 'prediction' column"):
        read_predictions(pa.table({"label": [1.0], "score": [0.3]}), task="regression")
    with pytest.raises(DataError, match="task='ranking'"):
        read_predictions(pa.table({"label": [1.0], "prediction": [0.3]}), task="ranking")


def test_a_directory_artifact_is_searched_for_a_parquet_or_csv_table(tmp_path):
    table = pa.table({"label": [1.0, 2.0], "prediction": [1.0, 2.5]})
    (tmp_path / "model").mkdir()
    pacsv.write_csv(table, tmp_path / "model" / "predictions.csv")
    read, path = read_table(str(tmp_path / "model"))
    assert path.endswith("predictions.csv") and read.column("prediction").to_pylist() == [1.0, 2.5]
    pq.write_table(table, tmp_path / "model" / "held_out.parquet")
    assert read_table(str(tmp_path / "model"), "held_out.parquet")[1].endswith("held_out.parquet")
    with pytest.raises(DataError, match=r"no predictions table in .*expected one of \['other.csv'\]"):
        read_table(str(tmp_path / "model"), "other.csv")
    with pytest.raises(DataError, match="file not found"):
        read_table(str(tmp_path / "absent.parquet"))
    (tmp_path / "broken.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(DataError, match="cannot read the predictions table"):
        read_table(str(tmp_path / "broken.parquet"))
