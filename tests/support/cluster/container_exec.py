"""SIMULATION of a container's start, run by the pod runner inside a fresh mount and UTS namespace.

``unshare --mount --uts --propagation private`` gives this process mounts and a hostname that no
other pod sees; here the pod's volumes are bind-mounted at their mount paths (a Secret at
``/var/run/secrets/...``, an emptyDir at ``/dev/shm``, the generated ``/etc/hosts``), the
hostname is set to the pod's, and the container's command replaces this process.

A mount namespace isolates mounts, not writes: a directory created here is created on the host
for every later process (a stray ``/var/run/secrets/kubernetes.io`` makes the kubeflow SDKs
believe they run in a pod). So nothing is created on the host: when a mount path does not exist,
its deepest existing ancestor is covered, in this namespace only, by an overlay whose writable
layer is a private tmpfs, and the missing directories are made inside that overlay. Volume
sources and the tmpfs are opened before any overlay and mounted through ``/proc/self/fd``, so an
overlay over a directory that holds them (``/tmp`` holds the pod runner's work directory) does
not hide them.

Limits: the root filesystem is the host's (no image layers); an overlaid ancestor hides, for
this container, any mounts below it on the host, and what the container writes below it stays in
the container, as it would in an image's filesystem; a mount path whose only existing ancestor is
``/`` is refused rather than overlaying the root.

    unshare --mount --uts --propagation private -- python container_exec.py spec.json
"""

from __future__ import annotations

import ctypes
import json
import os
import socket
import sys

MS_RDONLY, MS_REMOUNT, MS_BIND = 1, 32, 4096
_libc = ctypes.CDLL(None, use_errno=True)


def mount(source: str | None, target: str, fstype: str | None = None, flags: int = 0, data: str | None = None):
    """mount(2) itself: paths through /proc/self/fd must be resolved in this process, not in mount(8)."""
    encode = lambda s: s.encode() if s is not None else None  # noqa: E731
    if _libc.mount(encode(source), encode(target), encode(fstype), flags, encode(data)) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"mount {source} on {target} ({fstype or 'bind'}): {os.strerror(errno)}")


def opened(path: str) -> str:
    """A path that keeps reaching ``path``'s file even after an overlay hides it."""
    return f"/proc/self/fd/{os.open(path, os.O_PATH)}"


class Overlays:
    """Writable overlays over host directories, their upper layers on one private tmpfs."""

    def __init__(self, scratch: str) -> None:
        self.scratch = scratch
        self.layers = ""  # the tmpfs, once mounted, as a /proc/self/fd path
        self.covered: list[str] = []

    def make_room(self, path: str) -> None:
        """Make ``path`` creatable without writing to the host: overlay its deepest existing ancestor."""
        ancestor = os.path.dirname(os.path.abspath(path))
        while not os.path.isdir(ancestor):
            ancestor = os.path.dirname(ancestor)
        ancestor = os.path.realpath(ancestor)
        if any(within(ancestor, c) for c in self.covered):
            return
        if ancestor == "/":
            raise SystemExit(f"container_exec: mount path {path!r}: no parent exists but /, which is never overlaid")
        if not self.layers:
            mount("tmpfs", self.scratch, "tmpfs")
            self.layers = opened(self.scratch)
        layer = f"{self.layers}/{len(self.covered)}"
        for d in (layer, f"{layer}/upper", f"{layer}/work"):
            os.mkdir(d)
        mount("overlay", ancestor, "overlay", 0, f"lowerdir={ancestor},upperdir={layer}/upper,workdir={layer}/work")
        self.covered.append(ancestor)


def within(path: str, directory: str) -> bool:
    return path == directory or path.startswith(directory.rstrip("/") + "/")


def main(spec_path: str) -> None:
    with open(spec_path) as f:
        spec = json.load(f)
    overlays = Overlays(spec["scratch"])
    sources = [(opened(m["source"]), os.path.isdir(m["source"])) for m in spec["mounts"]]
    for mount_spec, (source, is_dir) in zip(spec["mounts"], sources, strict=True):
        target = mount_spec["target"]
        if not os.path.exists(target):
            overlays.make_room(target)
            if is_dir:
                os.makedirs(target)
            else:
                os.makedirs(os.path.dirname(target), exist_ok=True)
                open(target, "a").close()
        mount(source, target, flags=MS_BIND)
        if mount_spec.get("readOnly"):
            mount(None, target, flags=MS_REMOUNT | MS_BIND | MS_RDONLY)
    socket.sethostname(spec["hostname"])
    os.chdir(spec.get("workingDir") or "/")
    argv = spec["argv"]
    try:
        os.execvpe(argv[0], argv, spec["env"])
    except OSError as error:
        # What the kubelet reports as StartError: the command cannot be run.
        print(f"container_exec: cannot run {argv[0]!r}: {error}", file=sys.stderr)
        sys.exit(128)


if __name__ == "__main__":
    main(sys.argv[1])
