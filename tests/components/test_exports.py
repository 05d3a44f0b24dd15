import importlib
import pkgutil

from kfp.dsl.python_component import PythonComponent

from mlworkloads import components
from mlworkloads.images import COMPONENT_IMAGE


def _component_modules():
    return [m.name for m in pkgutil.iter_modules(components.__path__) if not m.name.startswith("_")]


def test_every_component_module_is_exported_in_all_under_its_own_name():
    assert sorted(components.__all__) == sorted(_component_modules())
    for name in _component_modules():
        module = importlib.import_module(f"mlworkloads.components.{name}")
        assert isinstance(getattr(module, name), PythonComponent)


def test_every_component_runs_on_the_project_image_without_installing_anything():
    for name in components.__all__:
        container = getattr(components, name).component_spec.implementation.container
        assert container.image == COMPONENT_IMAGE
        assert "pip install" not in " ".join(container.command)


def test_every_component_documents_each_input_and_output():
    for name in components.__all__:
        spec = getattr(components, name).component_spec
        undocumented = [k for k, v in {**spec.inputs, **(spec.outputs or {})}.items() if not v.description]
        assert not undocumented, f"{name}: {undocumented}"
