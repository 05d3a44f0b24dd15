"""Reading a shipped Role into the (verb, resource) pairs it grants, as the audit log names calls."""

from __future__ import annotations

import pathlib

import yaml


def granted(rbac_path: pathlib.Path) -> set[tuple[str, str]]:
    role = next(d for d in yaml.safe_load_all(rbac_path.read_text()) if d["kind"] == "Role")
    return {
        (verb, f"{resource}.{group}" if group else resource)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
