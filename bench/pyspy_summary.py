"""Summarises a py-spy raw profile (folded stacks) as the frames that take the most samples.

    py-spy record -p PID -d 8 -r 1000 -f raw -o serve.raw     # while a bench script drives PID
    .venv/bin/python bench/pyspy_summary.py serve.raw --under TabularModel.predict

Prints each frame's share of the samples (inclusive: the frame is anywhere on the stack; self:
it is the innermost), counting only stacks of the server's event loop (`--thread-frame`), so
that idle worker threads do not dilute the shares. `--under NAME` also lists what runs inside
the frames named NAME. The summaries in bench/profiles/ were made with it.
"""

from __future__ import annotations

import argparse
import collections
import sys


def _short(frame: str, width: int = 140) -> str:
    """C++ frames run to thousands of characters of template arguments: keep the start."""
    return frame if len(frame) <= width else frame[: width - 3] + "..."


def summarise(lines, thread_frame: str, under: str | None, top: int) -> str:
    inclusive: collections.Counter[str] = collections.Counter()
    innermost: collections.Counter[str] = collections.Counter()
    inside: collections.Counter[str] = collections.Counter()
    total = 0
    for line in lines:
        stack, _, count = line.rstrip("\n").rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        if thread_frame and not any(thread_frame in frame for frame in frames):
            continue
        samples = int(count)
        total += samples
        for frame in set(frames):
            inclusive[frame] += samples
        innermost[frames[-1]] += samples
        if under:
            marks = [i for i, frame in enumerate(frames) if under in frame]
            if marks:
                for frame in set(frames[marks[-1] :]):
                    inside[frame] += samples
    if not total:
        return "no samples matched"
    out = [f"{total} samples on stacks with {thread_frame!r}", "", "inclusive:"]
    out += [f"{100 * n / total:5.1f}%  {_short(frame)}" for frame, n in inclusive.most_common(top)]
    out += ["", "self:"]
    out += [f"{100 * n / total:5.1f}%  {_short(frame)}" for frame, n in innermost.most_common(top)]
    if under:
        out += ["", f"inside {under} (share of all samples):"]
        out += [f"{100 * n / total:5.1f}%  {_short(frame)}" for frame, n in inside.most_common(top)]
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("profile", help="py-spy output recorded with `-f raw`.")
    parser.add_argument("--thread-frame", default="run_forever", help="Count only stacks holding this frame.")
    parser.add_argument("--under", help="Also list the frames inside the frames named this.")
    parser.add_argument("--top", type=int, default=30, help="Rows per table.")
    args = parser.parse_args()
    with open(args.profile) as f:
        print(summarise(f, args.thread_frame, args.under, args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
