"""Scoring one row with a tree ensemble in a few numpy operations (QuickScorer's bit vectors).

XGBoost's predictor costs ~150 us of fixed overhead per call and ~0.5 us per tree for a single
row (bench/README.md): ~550 us for the flights model's 670 trees, more than the whole rest of a
request. A request of one row is the common case of an endpoint, so it gets this path instead
(Lucchese et al., "QuickScorer", SIGIR 2015), ~80 us for the same trees:

Number each tree's leaves left to right, bit 0 the leftmost. A node whose test fails (the row
goes right) rules out the leaves of its left subtree: its mask has those bits cleared. AND-ing
the masks of a tree's failed nodes leaves the reachable leaves, and the row's leaf is the
lowest bit still set. All nodes of all trees are tested at once, in node order grouped by tree.

It holds for numeric splits (XGBoost goes left when `x < threshold`, both float32) and trees of
at most 64 leaves (one uint64 per tree); anything else (categorical splits, bigger trees,
missing values, several rows) is XGBoost's. `build` checks the result against XGBoost on rows
that cross every threshold and gives up (None) unless they agree.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np

ALL_LEAVES = np.uint64(0xFFFF_FFFF_FFFF_FFFF)
MAX_LEAVES = 64
#: How close the two must agree on margins (float32 sums in XGBoost, float64 here).
TOLERANCE = 1e-4


@dataclasses.dataclass(frozen=True)
class QuickScorer:
    """Every internal node's (feature, threshold, mask), grouped by tree, and every tree's leaf values."""

    features: np.ndarray  # (nodes,) int64
    thresholds: np.ndarray  # (nodes,) float32
    masks: np.ndarray  # (nodes,) uint64: the leaves still reachable when this node's test fails
    starts: np.ndarray  # (trees,) where each tree's nodes start
    leaf_values: np.ndarray  # (trees, 64) float64, left to right
    groups: np.ndarray  # (trees, outputs) one-hot: which output each tree adds to
    base_margin: np.ndarray  # (outputs,) the model's base score as a margin, plus single-leaf trees

    def margins(self, row: np.ndarray) -> np.ndarray:
        """The raw margins (outputs,) of one row (float32, no NaN)."""
        passed = np.less(row.take(self.features), self.thresholds)  # went left: rules nothing out
        applied = self.masks | (passed.view(np.uint8).astype(np.uint64) * ALL_LEAVES)
        reachable = np.bitwise_and.reduceat(applied, self.starts)
        lowest = reachable & (~reachable + np.uint64(1))
        leaf = np.log2(lowest.astype(np.float64)).astype(np.int64)  # exact: a power of two
        return self.leaf_values[np.arange(len(leaf)), leaf] @ self.groups + self.base_margin


def build(booster, rounds: int, n_features: int) -> QuickScorer | None:
    """The ensemble's first `rounds` rounds as a `QuickScorer`, or None when it cannot be one."""
    model = json.loads(booster.save_raw("json"))
    learner = model["learner"]
    trees_model = learner["gradient_booster"].get("model", {})
    if learner["gradient_booster"].get("name") != "gbtree" or "trees" not in trees_model:
        return None
    count = trees_model["iteration_indptr"][rounds]
    trees, outputs_of = trees_model["trees"][:count], trees_model["tree_info"][:count]
    outputs = max(outputs_of) + 1 if outputs_of else 1
    features, thresholds, masks, starts, leaves, groups = [], [], [], [], [], []
    constant = np.zeros(outputs)
    for tree, output in zip(trees, outputs_of, strict=True):
        if any(tree["split_type"]) or int(tree["tree_param"].get("size_leaf_vector", "1")) > 1:
            return None
        left, right, values = tree["left_children"], tree["right_children"], tree["split_conditions"]
        if left[0] == -1:
            constant[output] += values[0]
            continue
        order, left_leaves = _leaves_left_to_right(left, right)
        if len(order) > MAX_LEAVES:
            return None
        starts.append(len(features))
        for node, cleared in left_leaves:
            features.append(tree["split_indices"][node])
            thresholds.append(values[node])
            masks.append(~np.uint64(cleared))
        row = np.zeros(MAX_LEAVES)
        row[: len(order)] = [values[node] for node in order]
        leaves.append(row)
        groups.append(np.eye(outputs)[output])
    if not starts:
        return None
    scorer = QuickScorer(
        features=np.array(features, np.int64),
        thresholds=np.array(thresholds, np.float32),
        masks=np.array(masks, np.uint64),
        starts=np.array(starts, np.int64),
        leaf_values=np.array(leaves),
        groups=np.array(groups),
        base_margin=constant,
    )
    return _checked(scorer, booster, rounds, n_features)


def _leaves_left_to_right(left: list[int], right: list[int]) -> tuple[list[int], list[tuple[int, int]]]:
    """The leaves in order, and each internal node with the bits of its left subtree's leaves."""
    order: list[int] = []
    left_leaves: list[tuple[int, int]] = []
    # Iterative in-order walk: (node, its left subtree's first leaf index once known).
    stack: list[tuple[int, int]] = [(0, -1)]
    spans: dict[int, tuple[int, int]] = {}  # node -> (first leaf, one past last leaf)
    while stack:
        node, state = stack.pop()
        if left[node] == -1:
            spans[node] = (len(order), len(order) + 1)
            order.append(node)
        elif state == -1:
            stack += [(node, 0), (right[node], -1), (node, 1), (left[node], -1)]
        elif state == 1:  # the left subtree is done
            first, last = spans[left[node]]
            left_leaves.append((node, ((1 << (last - first)) - 1) << first))
        else:  # both subtrees done
            spans[node] = (spans[left[node]][0], spans[right[node]][1])
    return order, left_leaves


def _checked(scorer: QuickScorer, booster, rounds: int, n_features: int) -> QuickScorer | None:
    """The scorer with XGBoost's base margin added, if it agrees with XGBoost on probing rows."""
    rng = np.random.default_rng(0)
    probes = np.zeros((32, n_features), np.float32)
    for feature in range(n_features):
        cuts = scorer.thresholds[scorer.features == feature]
        if cuts.size:  # values at, just below and between the thresholds: every test both ways
            around = np.concatenate([cuts, np.nextafter(cuts, np.float32(-np.inf)), cuts + 1])
            probes[:, feature] = rng.choice(around, size=len(probes))
    expected = booster.inplace_predict(probes, iteration_range=(0, rounds), predict_type="margin")
    expected = np.asarray(expected, np.float64).reshape(len(probes), -1)
    ours = np.array([scorer.margins(row) for row in probes])
    base = expected[0] - ours[0]
    if not np.allclose(ours + base, expected, atol=TOLERANCE, rtol=0):
        return None
    return dataclasses.replace(scorer, base_margin=scorer.base_margin + base)
