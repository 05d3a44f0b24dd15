"""The folded forward pass gives the module's own outputs, and refuses what the module refuses."""

import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

from mlworkloads.training.compiled_forward import COMPILED_ROWS
from mlworkloads.training.export import scores_from_logits
from mlworkloads.training.inference import FoldedTabularNet, fold, forward_function
from mlworkloads.training.model import TabularNet


def _net(numeric_width=6, cardinalities=(4, 9, 2), output_size=1, hidden_sizes=(16, 8), seed=0, **kwargs):
    torch.manual_seed(seed)
    net = TabularNet(numeric_width, list(cardinalities), output_size, list(hidden_sizes), dropout=0.3, **kwargs)
    for parameter in net.parameters():  # away from initialisation, so that every weight matters
        nn.init.normal_(parameter, std=0.5)
    return net.eval()


def _inputs(net: TabularNet, rows: int, seed=1):
    rng = np.random.default_rng(seed)
    width = net.mlp[0].in_features - sum(e.embedding_dim for e in net.embeddings)
    numeric = rng.normal(size=(rows, width)).astype(np.float32)
    categorical = np.zeros((rows, len(net.embeddings)), dtype=np.int64)
    for j, table in enumerate(net.embeddings):
        categorical[:, j] = rng.integers(0, table.num_embeddings, rows)
    return numeric, categorical


def _reference(net, numeric, categorical):
    with torch.inference_mode():
        return net(torch.from_numpy(numeric), torch.from_numpy(categorical)).numpy()


@pytest.mark.parametrize(
    "shape",
    [
        {},
        {"output_size": 5},
        {"cardinalities": ()},
        {"numeric_width": 0},
        {"hidden_sizes": ()},
        {"hidden_sizes": (32, 16, 8), "embedding_dim": 3},
    ],
)
@pytest.mark.parametrize("rows", [1, 3, 16, 17, 1000])
def test_the_folded_network_gives_the_modules_logits(shape, rows):
    net = _net(**shape)
    folded = fold(net)
    assert isinstance(folded, FoldedTabularNet)
    numeric, categorical = _inputs(net, rows)
    got = folded(numeric, categorical)
    assert got.dtype == np.float32 and got.shape == (rows, net.mlp[-1].out_features)
    np.testing.assert_allclose(got, _reference(net, numeric, categorical), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("shape", [{}, {"output_size": 5}, {"cardinalities": ()}, {"hidden_sizes": ()}])
def test_a_few_rows_compiled_agree_with_numpys_path_to_float32_rounding(shape):
    net = _net(**shape)
    folded = fold(net)
    numeric, categorical = _inputs(net, COMPILED_ROWS + 1)
    numeric[0, 0] = np.nan  # a NaN propagates on both paths
    through_numpy = folded(numeric, categorical)  # one row too many for the compiled path
    compiled = folded(numeric[:COMPILED_ROWS], categorical[:COMPILED_ROWS])
    assert compiled.dtype == np.float32 and compiled.flags.c_contiguous
    assert np.isnan(compiled[0]).all() and np.isnan(through_numpy[0]).all()
    np.testing.assert_allclose(compiled[1:], through_numpy[1:COMPILED_ROWS], rtol=1e-6, atol=1e-6)


def test_the_compiled_path_loads_while_a_kfp_local_task_has_print_swapped():
    # kfp.local swaps builtins.print while a task runs; numba's import used to fail under it.
    script = (
        "from kfp.local import logging_utils\n"
        "from mlworkloads.training.compiled_forward import _compiled\n"
        "with logging_utils.indented_print():\n"
        "    _compiled()\n"
        "assert not hasattr(logging_utils, 'indented_print_function')\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


def test_anything_but_an_eval_mode_tabular_net_runs_through_torch():
    class Wider(TabularNet):
        pass

    net = _net()
    assert fold(net.train()) is None, "dropout is live in training mode"
    assert fold(_net().eval()) is not None
    custom = nn.Sequential(nn.Linear(6, 1))
    assert fold(custom) is None
    torch.manual_seed(0)
    subclass = Wider(6, [4, 9, 2], 1, [16, 8]).eval()
    assert fold(subclass) is None
    numeric, categorical = _inputs(subclass, 5)
    np.testing.assert_array_equal(
        forward_function(subclass)(numeric, categorical), _reference(subclass, numeric, categorical)
    )


@pytest.mark.parametrize("rows", [3, 40])
@pytest.mark.parametrize("bad", [-1, 4])
def test_an_index_outside_its_columns_table_is_refused_not_read_from_the_next_column(bad, rows):
    net = _net()
    numeric, categorical = _inputs(net, rows)
    categorical[1, 0] = bad  # column 0 has 4 categories: 4 would be column 1's first row
    with pytest.raises(IndexError, match="out of range"):
        fold(net)(numeric, categorical)
    with pytest.raises(IndexError):
        _reference(net, numeric, categorical)


def test_scores_are_probabilities_or_scaled_values():
    logits = np.array([[-3.0], [0.0], [40.0], [-120.0]], dtype=np.float32)
    binary = scores_from_logits("binary", logits)
    positive = torch.sigmoid(torch.from_numpy(logits[:, 0])).numpy()
    np.testing.assert_allclose(binary, np.stack([1 - positive, positive], axis=1), atol=1e-7)
    assert binary.dtype == np.float32 and np.isfinite(binary).all()
    multi = scores_from_logits("multiclass", np.array([[1.0, 2.0, 3.0]], dtype=np.float32))
    np.testing.assert_allclose(multi, torch.softmax(torch.tensor([[1.0, 2.0, 3.0]]), dim=1).numpy(), rtol=1e-6)
    values = scores_from_logits("regression", np.array([[0.5], [-1.0]], dtype=np.float32), {"mean": 10, "std": 2})
    np.testing.assert_allclose(values, [11.0, 8.0])
