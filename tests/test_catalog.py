"""mlworkloads/catalog.py: every component is a catalogue entry (metadata.yaml and a README that
is generated from it and the docstring), in the schema kubeflow/pipelines-components asks for."""

import copy
import datetime as dt
import os
import pathlib

import pytest
import yaml

from mlworkloads import catalog, components

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TODAY = dt.date(2026, 12, 6)


def test_every_component_has_an_entry_and_its_readme_is_current():
    generated = catalog.entries(REPO)
    assert sorted(os.path.basename(os.path.dirname(p)) for p in generated) == sorted(components.__all__)
    stale = [p for p, text in generated.items() if not os.path.isfile(p) or pathlib.Path(p).read_text() != text]
    assert not stale, f"regenerate with `mlworkloads catalog`: {stale}"
    listed = sorted(os.listdir(os.path.join(REPO, catalog.CATALOG_DIR)))
    assert listed == sorted(components.__all__), "an entry without a component, or the reverse"


def test_a_readme_lists_every_input_and_output_with_its_description():
    text = catalog.readme("deploy_model", components.deploy_model, catalog.read_metadata(REPO, "deploy_model"))
    for name, spec in components.deploy_model.component_spec.inputs.items():
        assert f"| `{name}` |" in text and spec.description.split()[0] in text
    assert "| `Output` | String | The endpoint URL. |" in text
    assert "- KServe >=0.20" in text and "- Last verified: 2026-12-06" in text


def _valid():
    with open(os.path.join(REPO, catalog.CATALOG_DIR, "launch_training_job", "metadata.yaml")) as f:
        return yaml.safe_load(f)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda m: m.update(name="other"), "name is 'other', expected the component's, 'launch_training_job'"),
        (lambda m: m.update(tier="gold"), "tier is 'gold'"),
        (lambda m: m.update(stability="mature"), "stability is 'mature'"),
        (lambda m: m["dependencies"]["kubeflow"].pop(0), "dependencies.kubeflow must name Pipelines"),
        (lambda m: m["dependencies"]["kubeflow"].append({"name": "Airflow", "version": "2"}), "'Airflow'"),
        (lambda m: m["dependencies"]["external_services"].append({"name": "S3"}), "external_services entry"),
        (lambda m: m.update(tags=["ok", ""]), "tags must be a list of non-empty strings"),
        (lambda m: m.update(lastVerified="last week"), "expected an RFC 3339 time"),
        (lambda m: m.update(lastVerified="2025-11-01T00:00:00Z"), "400 days from today: verify the component again"),
    ],
    ids=["name", "tier", "stability", "no-pipelines", "unknown-project", "service", "tags", "date", "stale"],
)
def test_metadata_that_breaks_the_schema_is_refused_naming_the_field(change, message):
    metadata = copy.deepcopy(_valid())
    catalog.validate(copy.deepcopy(metadata), "launch_training_job", "m.yaml", TODAY)
    change(metadata)
    with pytest.raises(catalog.CatalogError) as err:
        catalog.validate(metadata, "launch_training_job", "m.yaml", TODAY)
    assert str(err.value).startswith("m.yaml: ") and message in str(err.value)
