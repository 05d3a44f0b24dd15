"""Build (or reuse) every binary of the test cluster from its upstream Go module.

The versions live in ``versions.toml`` beside this file, and nowhere else. Binaries go to a cache
outside the repo; each is stamped with a hash of its own pin (and, for kubeplane, of our one Go
source ``kubeplane/main.go``), so a second run reuses them and a changed pin rebuilds only what
it pins. Upstream's released CRDs, webhooks and default configs come with each module's source,
which is kept beside the binaries (``src/<name>``) for the cluster to install.

    python tests/support/cluster/build.py [NAME ...]   # default: INSTALLED; prints the cache directory
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import tomllib

HERE = Path(__file__).resolve().parent
VERSIONS_FILE = HERE / "versions.toml"
KUBEPLANE_SOURCE = HERE / "kubeplane" / "main.go"
OPERATORS = ("training_operator", "kserve", "kube_rbac_proxy", "trainer", "jobset", "prometheus")
#: Pinned for their released manifests only: nothing of them is built.
MANIFESTS = ("cert_manager",)
#: What the test cluster installs today (cluster.py), so what `make cluster` and the tests build:
#: an operator nothing installs would cost CI minutes for nothing.
INSTALLED = ("kubeplane", "training_operator", "kserve", "kube_rbac_proxy", "cert_manager", "trainer", "jobset")
STAMP = ".complete"


def versions() -> dict:
    return tomllib.loads(VERSIONS_FILE.read_text())


def cache_dir() -> Path:
    """Where the cluster is built: ``$MLWORKLOADS_CLUSTER_CACHE`` or ``~/.cache/mlworkloads/cluster``."""
    return Path(os.environ.get("MLWORKLOADS_CLUSTER_CACHE", Path.home() / ".cache" / "mlworkloads" / "cluster"))


def pin_digest(name: str, pins: dict) -> str:
    """What one binary is built from: its own pin (a new operator pin rebuilds only that operator).

    Keyed on the parsed pin, not the file's bytes, so a reworded comment rebuilds nothing.
    """
    key = json.dumps(pins["kubernetes" if name == "kubeplane" else name], sort_keys=True).encode()
    if name == "kubeplane":
        key += KUBEPLANE_SOURCE.read_bytes()
    return hashlib.sha256(key).hexdigest()[:16]


@dataclass(frozen=True)
class Built:
    root: Path

    @property
    def bin(self) -> Path:
        return self.root / "bin"

    def binary(self, name: str) -> Path:
        return self.bin / name

    def source(self, name: str) -> Path:
        """Where ``name`` is built from; an operator's copy keeps its released manifests."""
        return self.root / "src" / name


#: How long one ``go`` command may run before the build fails, with what it printed so far. The
#: slowest cold step measured here is kubeplane's link of five Kubernetes programs (about 10 min
#: on 2 cores, with its modules' compile); three times that is far past any honest build, and
#: still well inside CI's 90 minutes, so a wedged build fails while there is time to read why.
GO_COMMAND_LIMIT = 1800.0
#: A line every so often while one ``go`` command runs, so a long cold build is seen to be alive.
PROGRESS_EVERY = 120.0


def _go(*args: str, cwd: Path, env: dict | None = None, limit: float = GO_COMMAND_LIMIT) -> str:
    # GOWORK=off: a module that ships a go.work (Prometheus does) is built as the module it is.
    merged = {**os.environ, "GOFLAGS": "-mod=mod", "CGO_ENABLED": "0", "GOWORK": "off", **(env or {})}
    command = f"go {' '.join(args)}"
    # Its own session, so that running out of time stops the compilers and linker it started too.
    process = subprocess.Popen(
        ["go", *args], cwd=cwd, env=merged, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip
    started = time.monotonic()
    while True:
        try:
            stdout, stderr = process.communicate(timeout=PROGRESS_EVERY)
            break
        except subprocess.TimeoutExpired:
            elapsed = time.monotonic() - started
            if elapsed < limit:
                _stderr(f"  ... {command} still running ({elapsed / 60:.0f} min)")
                continue
            os.killpg(process.pid, signal.SIGKILL)
            stdout, stderr = process.communicate()
            raise SystemExit(
                f"{command} in {cwd} ran {elapsed / 60:.0f} min, past its {limit / 60:.0f} min bound; stopped. "
                f"What it printed:\n{(stderr or '')[-4000:]}{(stdout or '')[-1000:]}"
            ) from None
    if process.returncode != 0:
        raise SystemExit(f"{command} failed in {cwd}:\n{stderr[-4000:]}")
    return stdout


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _download(module: str, version: str, cwd: Path) -> Path:
    info = json.loads(_go("mod", "download", "-json", f"{module}@{version}", cwd=cwd))
    if info.get("Error"):
        raise SystemExit(f"{module}@{version}: {info['Error']}")
    return Path(info["Dir"])


def _copy_source(module_dir: Path, dest: Path) -> None:
    """The module cache is read-only; a build needs its own writable copy of the module's tree."""
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(module_dir, dest, symlinks=True)
    for path in [dest, *dest.rglob("*")]:
        if not path.is_symlink():
            path.chmod(path.stat().st_mode | 0o200)


def _kubeplane(pins: dict, built: Built) -> None:
    kube = pins["kubernetes"]
    src = built.source("kubeplane")
    src.mkdir(parents=True, exist_ok=True)
    kubernetes_dir = _download(kube["module"], kube["version"], src)
    # k8s.io/kubernetes points its staging modules at ./staging; outside its repo they are the
    # published k8s.io/* modules at the matching v0 version, as every consumer of it replaces them.
    staging = re.findall(r"^\s*(k8s\.io/[\w.-]+) => \./staging/", (kubernetes_dir / "go.mod").read_text(), re.M)
    replaces = "\n".join(f"\t{name} => {name} {kube['staging_version']}" for name in staging)
    (src / "go.mod").write_text(
        "module mlworkloads.test/kubeplane\n\ngo 1.26.0\n\n"
        f"require (\n\t{kube['module']} {kube['version']}\n\t{kube['etcd_module']} {kube['etcd_version']}\n)\n\n"
        f"replace (\n{replaces}\n)\n"
    )
    shutil.copy(KUBEPLANE_SOURCE, src / "main.go")
    _go("mod", "tidy", cwd=src)
    major, minor = kube["version"].lstrip("v").split(".")[:2]
    # What Kubernetes' own build stamps (hack/lib/version.sh): the API server derives its
    # compatibility version and /version from these.
    stamp = {"gitVersion": kube["version"], "gitMajor": major, "gitMinor": minor, "gitTreeState": "clean"}
    ldflags = " ".join(
        f"-X {package}.{key}={value}"
        for package in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version")
        for key, value in stamp.items()
    )
    _go("build", "-trimpath", "-ldflags", f"-s -w {ldflags}", "-o", str(built.binary("kubeplane")), ".", cwd=src)


def _operator(name: str, pin: dict, built: Built) -> None:
    src = built.source(name)
    src.parent.mkdir(parents=True, exist_ok=True)
    _copy_source(_download(pin["module"], pin["version"], src.parent), src)
    _go("build", "-trimpath", "-ldflags", "-s -w", "-o", str(built.binary(name)), pin["package"], cwd=src)
    for sidecar, package in pin.get("sidecars", {}).items():
        _go("build", "-trimpath", "-ldflags", "-s -w", "-o", str(built.binary(sidecar)), package, cwd=src)


def _manifests(name: str, pin: dict, built: Built) -> None:
    src = built.source(name)
    src.parent.mkdir(parents=True, exist_ok=True)
    _copy_source(_download(pin["module"], pin["version"], src.parent), src)
    (built.bin / name).write_text(f"{pin['module']}@{pin['version']}: manifests only, in {src}\n")


def bind_shim(built: Built) -> Path:
    """The pod runner's LD_PRELOAD shim (``bind_to_pod_ip.c``), built with the system's C compiler.

    Named by a hash of its source, so an edit builds a new one and the Go builds stay where they are.
    """
    source = HERE / "bind_to_pod_ip.c"
    target = built.root / "shim" / f"bind_to_pod_ip-{hashlib.sha256(source.read_bytes()).hexdigest()[:12]}.so"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(".partial")
        subprocess.run(["cc", "-shared", "-fPIC", "-O2", "-Wall", "-o", str(partial), str(source), "-ldl"], check=True)
        partial.rename(target)
    return target


@contextlib.contextmanager
def _only_builder(root: Path, log):
    """Holds the cache's lock: a second builder (a test run while `build.py` runs) waits for the
    first and then finds its binaries built, instead of both rewriting the same source trees."""
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "build.lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log(f"waiting for another build of {root} to finish ...")
            fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def build(log=print, only: tuple[str, ...] | None = None) -> Built:
    """Build what is missing for the current pins (of ``only`` those, if given); return where they are."""
    with _only_builder(cache_dir(), log):
        return _build(log, only)


def _build(log, only: tuple[str, ...] | None) -> Built:
    pins = versions()
    built = Built(cache_dir())
    built.bin.mkdir(parents=True, exist_ok=True)
    steps = [("kubeplane", lambda: _kubeplane(pins, built))]
    steps += [(name, lambda name=name: _operator(name, pins[name], built)) for name in OPERATORS]
    steps += [(name, lambda name=name: _manifests(name, pins[name], built)) for name in MANIFESTS]
    for name, step in steps:
        if only is not None and name not in only:
            continue
        stamp, digest = built.bin / f"{name}{STAMP}", pin_digest(name, pins)
        binaries = [name, *pins.get(name, {}).get("sidecars", {})]
        if (
            stamp.exists()
            and stamp.read_text().split()[:1] == [digest]
            and all(built.binary(b).exists() for b in binaries)
        ):
            continue
        started = time.monotonic()
        log(f"building {name} ...")
        step()
        stamp.write_text(f"{digest} {time.monotonic() - started:.0f}\n")
        log(f"built {name} in {time.monotonic() - started:.0f} s")
    return built


if __name__ == "__main__":
    print(build(log=_stderr, only=tuple(sys.argv[1:]) or INSTALLED).root)
