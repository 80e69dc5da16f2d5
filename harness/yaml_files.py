"""Reading the YAML files users write (studies, tuning runs) with one-line errors."""

from __future__ import annotations

from pathlib import Path

import yaml


def read_yaml(path: str | Path, error: type[Exception], kind: str):
    """The parsed content of ``path``; a missing file or a YAML syntax error raises ``error``."""
    path = Path(path)
    if not path.exists():
        raise error(f"{kind} file {path} does not exist")
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise error(f"{path}: not valid YAML: {exc}") from None
