"""compiled/ is a golden file: it must equal a fresh compile, byte for byte."""

import filecmp
import os

import pytest
from kfp import components

from mlworkloads.compiling import COMPILE_COMMAND, compile_all

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMPILED = os.path.join(REPO, "compiled")


@pytest.fixture(scope="module")
def fresh(tmp_path_factory):
    out = tmp_path_factory.mktemp("compiled")
    compile_all(str(out))
    return out


def _tree(root):
    return sorted(os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs)


def test_compiled_directory_is_current(fresh):
    expected, committed = _tree(fresh), _tree(COMPILED)
    stale = sorted(set(expected) ^ set(committed))
    stale += [
        f for f in expected if f in committed and not filecmp.cmp(fresh / f, os.path.join(COMPILED, f), shallow=False)
    ]
    assert not stale, f"compiled/ is stale ({stale}); regenerate it with: {COMPILE_COMMAND}"


def test_compile_is_deterministic(fresh, tmp_path):
    compile_all(str(tmp_path))
    assert all(filecmp.cmp(fresh / f, tmp_path / f, shallow=False) for f in _tree(fresh))


def test_every_compiled_file_loads_with_kfps_own_loader():
    for relative in _tree(COMPILED):
        loaded = components.load_component_from_file(os.path.join(COMPILED, relative))
        assert loaded.component_spec.name
