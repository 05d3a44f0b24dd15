"""Typed `-p key=value` pipeline parameters, checked against the pipeline's own signature."""

from __future__ import annotations

import json

from mlworkloads.errors import ParameterError


def _parse_bool(key: str, raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise ParameterError(f"parameter {key!r} is a Boolean; got {raw!r} (use true or false).")


def _parse_json(key: str, raw: str, kind: type):
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as err:
        raise ParameterError(f"parameter {key!r} takes JSON ({kind.__name__}); got {raw!r}: {err}") from err
    if not isinstance(value, kind):
        raise ParameterError(f"parameter {key!r} takes a JSON {kind.__name__}; got {raw!r}.")
    return value


def parse_parameters(component_spec, pairs: list[str]) -> dict:
    """Parses `key=value` strings into the types the pipeline declares.

    Raises:
        ParameterError: malformed pair, unknown key (listing the known ones), or a value the
            declared type cannot take.
    """
    inputs = component_spec.inputs or {}
    result = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ParameterError(f"-p {pair!r}: expected key=value.")
        if key not in inputs:
            raise ParameterError(f"unknown parameter {key!r}; this pipeline takes {sorted(inputs)!r}.")
        kind = inputs[key].type
        try:
            if kind == "Integer":
                result[key] = int(raw)
            elif kind == "Float":
                result[key] = float(raw)
            elif kind == "Boolean":
                result[key] = _parse_bool(key, raw)
            elif kind == "Dict":
                result[key] = _parse_json(key, raw, dict)
            elif kind == "List":
                result[key] = _parse_json(key, raw, list)
            else:
                result[key] = raw
        except ValueError as err:
            if isinstance(err, ParameterError):
                raise
            raise ParameterError(f"parameter {key!r} is {kind}; got {raw!r}.") from err
    return result
