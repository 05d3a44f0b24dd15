"""bench/pyspy_summary.py counts the event loop's stacks only, and what runs inside a frame."""

import importlib.util
import pathlib

SCRIPT = pathlib.Path(__file__).parents[1] / "bench" / "pyspy_summary.py"


def _module():
    spec = importlib.util.spec_from_file_location("pyspy_summary", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_shares_are_of_the_event_loops_samples_and_nest_under_the_named_frame():
    folded = [
        "main;run_forever;handle;TabularModel.predict;transform 3\n",
        "main;run_forever;handle;respond 1\n",
        "worker;wait_for_work 10\n",  # an idle thread: not counted
        "garbage line\n",
    ]
    text = _module().summarise(folded, "run_forever", "TabularModel.predict", top=10)
    header, inclusive, innermost, inside = (section.splitlines() for section in text.split("\n\n"))
    assert header == ["4 samples on stacks with 'run_forever'"]
    assert inclusive[0] == "inclusive:" and "100.0%  handle" in inclusive
    assert " 75.0%  TabularModel.predict" in inclusive and not any("wait_for_work" in line for line in inclusive)
    assert innermost == ["self:", " 75.0%  transform", " 25.0%  respond"]
    assert inside[0] == "inside TabularModel.predict (share of all samples):"
    assert sorted(inside[1:]) == [" 75.0%  TabularModel.predict", " 75.0%  transform"]
