"""Reading the YAML files users write (studies, tuning runs) with one-line errors.

Two departures from PyYAML's defaults, both so a file means what it looks like:

* numbers in exponent form are numbers: YAML 1.1 (PyYAML) reads ``1e-2`` as the *string*
  "1e-2"; we follow YAML 1.2 and read it as 0.01, so ``1e-2`` and ``0.01`` give one trial id;
* a key given twice in one mapping is an error, not "the last one wins".
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

# YAML 1.2 core schema floats that YAML 1.1 misses: exponents without a dot (1e-2, 5E+3).
_FLOAT_12 = re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$")
MAX_STUDY_FILE_BYTES = 1 << 20


class StrictLoader(yaml.SafeLoader):
    """SafeLoader + YAML 1.2 exponent floats + duplicate-key errors."""


def _construct_mapping(loader: StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    loader.flatten_mapping(node)
    seen: dict = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (first at line {seen[key] + 1})", key_node.start_mark
            )
        seen[key] = key_node.start_mark.line
    return loader.construct_mapping(node, deep=deep)


StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
StrictLoader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT_12, list("-+0123456789"))


def parse_yaml(text: str):
    return yaml.load(text, Loader=StrictLoader)  # noqa: S506 (a SafeLoader subclass)


def read_yaml(path: str | Path, error: type[Exception], kind: str):
    """The parsed content of ``path``; anything that is not a readable YAML file raises ``error``."""
    path = Path(path)
    if not path.exists():
        raise error(f"{kind} file {path} does not exist")
    if path.is_dir():
        raise error(f"{path} is a folder; give the {kind} YAML file inside it")
    try:
        if path.stat().st_size > MAX_STUDY_FILE_BYTES:
            raise error(f"{path}: {path.stat().st_size} bytes is too large for a {kind} file (a YAML file is expected)")
        data = path.read_bytes()
        if b"\x00" in data:
            raise error(f"{path} is a binary file; a {kind} file is YAML")
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise error(f"{path} is a binary file (not UTF-8 text); a {kind} file is YAML") from None
    except OSError as exc:
        raise error(f"cannot read {kind} file {path}: {exc.strerror}") from None
    try:
        return parse_yaml(text)
    except yaml.YAMLError as exc:
        raise error(f"{path}: not valid YAML: {exc}") from None
