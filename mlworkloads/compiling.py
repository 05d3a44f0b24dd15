"""Compiling every pipeline and component to IR YAML, deterministically."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
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
            with open(tmp, encoding="utf-8") as f:
                text = _stable_header(f.read())
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(text)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
        written.append(path)
    return written


def compile_all_for_registry(out_dir: str, registry: str) -> list[str]:
    """`compile_all` with every image under `registry`, in a fresh interpreter.

    Image names are fixed when the components are defined (on import), so a registry chosen
    now needs a process that imports them after `MLWORKLOADS_IMAGE_REGISTRY` is set.
    """
    from mlworkloads.images import REGISTRY_ENV

    code = "import sys; from mlworkloads.compiling import compile_all; print('\\n'.join(compile_all(sys.argv[1])))"
    result = subprocess.run(
        [sys.executable, "-c", code, out_dir],
        env={**os.environ, REGISTRY_ENV: registry},
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"compiling for registry {registry!r} failed:\n{result.stderr[-3000:]}")
    return result.stdout.split()


_DEFAULT = re.compile(r"^(#\s+\w+: \w+ \[Default: )(.*)(\])$")


def _sorted(value):
    if isinstance(value, dict):
        return {key: _sorted(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [_sorted(item) for item in value]
    return value


def _stable_header(text: str) -> str:
    """KFP's comment header prints dict defaults in protobuf map order, which differs from one
    process to the next; sort their keys so that compiling twice gives the same bytes."""
    lines = []
    for line in text.splitlines(keepends=True):
        match = _DEFAULT.match(line.rstrip("\n"))
        if match and line.startswith("#"):
            try:
                value = ast.literal_eval(match[2])
            except (ValueError, SyntaxError):
                lines.append(line)
                continue
            line = f"{match[1]}{_sorted(value)!r}{match[3]}\n"
        lines.append(line)
    return "".join(lines)
