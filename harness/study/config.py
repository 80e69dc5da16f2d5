"""Study files (YAML): parsing and validation with messages that name the offending key.

    name: blur                       # results go to <out>/<name>/
    description: "[001] Table 1, blur"
    trials: 75                       # seeds seed_offset .. seed_offset + trials - 1 per row
    epochs: 50
    workers: 2
    defaults: {dataset: blur, space: sequential, hp_set: H1}
    options: {problem: {noise_std: 0.1}}      # optional option groups: problem, ops, space, method
    rows:                            # a list value in a row expands as a Cartesian product;
                                     # hp_set: method-default = each method's own default set
      - {op_set: good, method: [lg-only, nets-only, das, random, random-search]}
      - {op_set: all, method: [das, random, random-search]}
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path

from harness.methods import METHODS, make_method
from harness.methods.hyperparams import TUNED_PREFIX, HyperParams, load_tuned, validate_hp_set_name
from harness.problems import PROBLEMS
from harness.runner.spec import TrialSpec
from harness.runner.trial import OPTION_GROUPS, build_context, split_options
from harness.spaces import OP_SETS, SPACES
from harness.yaml_files import read_yaml

TOP_KEYS = {"name", "description", "trials", "seed_offset", "epochs", "workers", "defaults", "options", "rows"}
ROW_KEYS = {"dataset", "space", "op_set", "method", "hp_set", "hp_overrides", "options", "trials"}
EXPANDABLE = ("dataset", "space", "op_set", "method", "hp_set")
# ``hp_set: method-default`` picks each method's own default set (e.g. BOHB-DAS-single for das-single).
METHOD_DEFAULT = "method-default"
NAME_REGISTRIES = {"dataset": PROBLEMS, "space": SPACES, "op_set": OP_SETS, "method": METHODS}


class StudyConfigError(ValueError):
    """A problem in a study file, phrased for the person who wrote it."""


@dataclass
class RowConfig:
    dataset: str
    space: str
    op_set: str
    method: str
    hp_set: str
    trials: int
    hp_overrides: dict = field(default_factory=dict)
    options: dict = field(default_factory=dict)


@dataclass
class StudyConfig:
    name: str
    rows: list[RowConfig]
    trials: int = 75
    epochs: int = 50
    workers: int = 2
    seed_offset: int = 0
    description: str = ""
    source: str = ""

    def specs(self) -> list[TrialSpec]:
        """All trials, seed-major so a partial run covers every row evenly."""
        per_row = [
            [
                TrialSpec.make(
                    dataset=r.dataset, space=r.space, op_set=r.op_set, method=r.method, hp_set=r.hp_set,
                    seed=self.seed_offset + s, epochs=self.epochs, hp_overrides=r.hp_overrides, options=r.options,
                )
                for s in range(r.trials)
            ]
            for r in self.rows
        ]
        out = []
        for s in range(max((len(p) for p in per_row), default=0)):
            out.extend(p[s] for p in per_row if s < len(p))
        return out


def _positive_int(value, where: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise StudyConfigError(f"{where} must be an integer >= {minimum}, got {value!r}")
    return value


def _merge_options(base: dict, extra: dict, where: str) -> dict:
    if not isinstance(extra, dict):
        raise StudyConfigError(f"{where} must be a mapping of option groups ({', '.join(OPTION_GROUPS)})")
    merged = {g: dict(v) for g, v in base.items()}
    for group, values in extra.items():
        if group not in OPTION_GROUPS:
            raise StudyConfigError(f"{where}: unknown option group {group!r}; known: {', '.join(OPTION_GROUPS)}")
        if not isinstance(values, dict):
            raise StudyConfigError(f"{where}.{group} must be a mapping, got {values!r}")
        merged.setdefault(group, {}).update(values)
    return merged


def _validate_name(key: str, value, where: str) -> str:
    try:
        if key == "hp_set":
            return validate_hp_set_name(value)
        return NAME_REGISTRIES[key].canonical(value)
    except (KeyError, ValueError, FileNotFoundError) as exc:
        raise StudyConfigError(f"{where}.{key}: {exc}") from None


def parse_study(data, source: str = "<study>") -> StudyConfig:
    if not isinstance(data, dict):
        raise StudyConfigError(f"{source}: a study file is a YAML mapping with keys {sorted(TOP_KEYS)}")
    unknown = sorted(set(data) - TOP_KEYS)
    if unknown:
        allowed = ", ".join(sorted(TOP_KEYS))
        raise StudyConfigError(f"{source}: unknown key(s) {', '.join(unknown)}; allowed: {allowed}")
    name = data.get("name") or Path(source).stem
    if not isinstance(name, str) or not name.replace("-", "").replace("_", "").isalnum():
        raise StudyConfigError(f"{source}: name must be letters, digits, '-' or '_', got {name!r}")
    trials = _positive_int(data.get("trials", 75), f"{source}: trials")
    epochs = _positive_int(data.get("epochs", 50), f"{source}: epochs")
    workers = _positive_int(data.get("workers", 2), f"{source}: workers")
    seed_offset = _positive_int(data.get("seed_offset", 0), f"{source}: seed_offset", minimum=0)
    defaults = data.get("defaults") or {}
    if not isinstance(defaults, dict):
        raise StudyConfigError(f"{source}: defaults must be a mapping of row keys")
    global_options = _merge_options({}, data.get("options") or {}, f"{source}: options")
    rows_data = data.get("rows")
    if not isinstance(rows_data, list) or not rows_data:
        raise StudyConfigError(f"{source}: rows must be a non-empty list of mappings")
    rows: list[RowConfig] = []
    seen: set = set()
    for i, raw in enumerate(rows_data):
        where = f"{source}: rows[{i}]"
        if not isinstance(raw, dict):
            raise StudyConfigError(f"{where} must be a mapping, got {raw!r}")
        row = {**defaults, **raw}
        unknown = sorted(set(row) - ROW_KEYS)
        if unknown:
            allowed = ", ".join(sorted(ROW_KEYS))
            raise StudyConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {allowed}")
        row.setdefault("hp_set", "H1")
        missing = [k for k in EXPANDABLE if k not in row]
        if missing:
            raise StudyConfigError(f"{where}: missing {', '.join(missing)} (give it in the row or in defaults)")
        row_trials = _positive_int(row.get("trials", trials), f"{where}.trials")
        options = _merge_options(global_options, row.get("options") or {}, f"{where}.options")
        hp_overrides = row.get("hp_overrides") or {}
        if not isinstance(hp_overrides, dict):
            raise StudyConfigError(f"{where}.hp_overrides must be a mapping of hyperparameters")
        choices = [row[k] if isinstance(row[k], list) else [row[k]] for k in EXPANDABLE]
        for combo in itertools.product(*choices):
            values = {
                k: v if (k, v) == ("hp_set", METHOD_DEFAULT) else _validate_name(k, v, where)
                for k, v in zip(EXPANDABLE, combo)
            }
            if values["hp_set"] == METHOD_DEFAULT:
                values["hp_set"] = METHODS.get(values["method"]).default_hp_set
            key = (tuple(values.values()), repr(sorted(hp_overrides.items())), repr(options))
            if key in seen:  # e.g. [H1, method-default] for a method whose own default is H1
                continue
            seen.add(key)
            rows.append(RowConfig(**values, trials=row_trials, hp_overrides=_pin_tuned(values["hp_set"], hp_overrides),
                                  options=options))
    study = StudyConfig(
        name=name, rows=rows, trials=trials, epochs=epochs, workers=workers, seed_offset=seed_offset,
        description=str(data.get("description", "")), source=source,
    )
    _check_rows_build(study)
    return study


def _pin_tuned(hp_set: str, overrides: dict) -> dict:
    """A ``tuned:`` set is a file that a later tuning run may overwrite: put its values into the
    spec, so the trial id (and a resumed study) reflects the hyperparameters actually used."""
    if not hp_set.startswith(TUNED_PREFIX):
        return overrides
    return {**load_tuned(hp_set[len(TUNED_PREFIX):]).to_dict(), **overrides}


def _check_rows_build(study: StudyConfig) -> None:
    """Resolve each row once (options, overrides, method/space fit) before any trial runs."""
    for i, row in enumerate(study.rows):
        spec = TrialSpec.make(
            dataset=row.dataset, space=row.space, op_set=row.op_set, method=row.method, hp_set=row.hp_set,
            seed=0, epochs=study.epochs, hp_overrides=row.hp_overrides, options=row.options,
        )
        try:
            split_options(spec.options_dict)
            HyperParams().replace(**row.hp_overrides) if row.hp_overrides else None
            make_method(row.method, row.options.get("method"))
            build_context(spec, "cpu")
        except (KeyError, ValueError, TypeError) as exc:
            label = f"{row.dataset}/{row.space}/{row.op_set}/{row.method}/{row.hp_set}"
            raise StudyConfigError(f"{study.source}: row {i} ({label}): {exc}") from None


def load_study(path: str | Path) -> StudyConfig:
    return parse_study(read_yaml(path, StudyConfigError, "study"), str(path))
