"""Compiling every pipeline and component to IR YAML, deterministically."""

from __future__ import annotations

import os
import tempfile

from kfp import compiler

COMPILE_COMMAND = "mlworkloads compile --out compiled"


def compile_all(out_dir: str) -> list[str]:
    """Writes `pipelines/<name>.yaml` and `components/<name>.yaml` under `out_dir`.

    Returns:
        The paths written, sorted.
    """
    from mlworkloads import components
    from mlworkloads.pipelines import PIPELINES

    targets = {os.path.join("pipelines", f"{name}.yaml"): func for name, func in PIPELINES.items()}
    for name in components.__all__:
        targets[os.path.join("components", f"{name}.yaml")] = getattr(components, name)
    written = []
    for relative, func in sorted(targets.items()):
        path = os.path.join(out_dir, relative)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        # Compile beside the target and rename, so a failed compile never leaves a stub.
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".", suffix=".tmp.yaml")
        os.close(fd)
        try:
            compiler.Compiler().compile(pipeline_func=func, package_path=tmp)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
        written.append(path)
    return written
