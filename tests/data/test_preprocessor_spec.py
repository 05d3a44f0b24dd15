import json

import pyarrow as pa
import pytest

from mlworkloads.data import preprocessor as pre
from mlworkloads.data.errors import DataError
from mlworkloads.data.preprocessor_spec import SPEC_FORMAT, SPEC_VERSION, validate_spec


def _written_spec() -> dict:
    """A spec as fit_preprocessor writes it, read back from its JSON."""
    table = pa.table(
        {
            "distance": [100.0, 200.0, None, 400.0],
            "carrier": ["UA", "UA", "AA", None],
            "label": ["on_time", "late", "on_time", "late"],
        }
    )
    return json.loads(pre.fit(table, pre.PreprocessorOptions(label_column="label")).to_json())


def test_a_written_spec_is_stamped_with_this_format_and_version_and_passes():
    spec = _written_spec()
    assert (spec["format"], spec["version"]) == (SPEC_FORMAT, SPEC_VERSION)
    validate_spec(spec, "preprocessor.json")


@pytest.mark.parametrize(
    ("tamper", "message"),
    [
        pytest.param(lambda s: s.update(version=SPEC_VERSION + 1), "written by a newer mlworkloads", id="newer"),
        pytest.param(lambda s: s.update(version="1"), "version is '1', expected an integer", id="version-text"),
        pytest.param(lambda s: s.update(format="pickle"), "format is 'pickle'", id="format"),
        pytest.param(lambda s: s.update(task="ranking"), "task is 'ranking'", id="task"),
        pytest.param(lambda s: s.update(label="late"), "label must be an object", id="label"),
        pytest.param(lambda s: s["label"].update(classes=["late"]), "at least two classes", id="one-class"),
        pytest.param(lambda s: s.update(numeric={}), "numeric must be a list", id="numeric-type"),
        pytest.param(lambda s: s["numeric"][0].update(std=0), "numeric['distance'].std is 0", id="std-zero"),
        pytest.param(lambda s: s["numeric"][0].update(mean="x"), "numeric['distance'].mean is 'x'", id="mean-text"),
        pytest.param(lambda s: s["numeric"][0].update(median=float("nan")), "median is nan", id="median-nan"),
        pytest.param(lambda s: s.update(categorical=None), "categorical must be a list", id="categorical-type"),
        pytest.param(lambda s: s["categorical"][0].pop("name"), "needs a string 'name'", id="categorical-name"),
        pytest.param(
            lambda s: s["categorical"][0].update(vocabulary=["UA", "UA"]), "vocabulary has duplicates", id="duplicates"
        ),
        pytest.param(
            lambda s: s["categorical"][0].update(vocabulary=["UA", 7]), "must be a list of strings", id="vocab-type"
        ),
    ],
)
def test_a_tampered_or_newer_spec_is_refused_naming_the_field(tamper, message):
    spec = _written_spec()
    tamper(spec)
    with pytest.raises(DataError) as err:
        pre.Preprocessor.from_dict(spec, source="model/preprocessor.json")
    assert str(err.value).startswith("model/preprocessor.json is not a valid preprocessor spec: ")
    assert message in str(err.value)


@pytest.mark.parametrize("spec", [[], "spec", None], ids=["list", "text", "null"])
def test_a_spec_that_is_not_an_object_is_refused(spec):
    with pytest.raises(DataError, match="expected a JSON object"):
        validate_spec(spec, "preprocessor spec")
