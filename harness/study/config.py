"""Study files (YAML): parsing and validation with messages that name the offending key.

    name: blur                       # results go to <out>/<name>/
    description: "[001] Table 1, blur"
    trials: 75                       # seeds seed_offset .. seed_offset + trials - 1 per row
    epochs: 50
    workers: 2
    defaults: {dataset: blur, space: sequential, hp_set: H1}
    options: {problem: {noise_std: 0.1}}      # optional option groups: problem, ops, space, method
    imports: [mypkg.methods, my_method.py]     # optional plugins (harness.runner.plugins)
    mirror: {optuna_storage: blur.optuna.log}  # optional live view (docs/live_view.md)
    rows:                            # a list value in a row expands as a Cartesian product;
                                     # hp_set: method-default = each method's own default set
      - {op_set: good, method: [lg-only, nets-only, das, random, random-search]}
      - {op_set: all, method: [das, random, random-search]}

The file's shape and its numbers are checked by pydantic models in strict mode (no silent
coercion: ``trials: "5"`` and ``epochs: 2.7`` are errors); names by the registries (with "did
you mean"); hyperparameter overrides and options by the types their owners declare
(``harness.runner.typed``). Every row becomes a typed ``RowSpec``, the one row identity.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from harness.methods import METHODS, make_method, resolve_hp_set
from harness.methods.hyperparams import TUNED_PREFIX, HyperParams, load_tuned, tuned_values, validate_hp_set_name
from harness.methods.schedules import alpha_frozen_epochs
from harness.runner.plugins import PluginError, Plugins, load_plugins
from harness.runner.spec import RowSpec, TrialSpec
from harness.runner.trial import build_context
from harness.runner.typed import ValueTypeError, typed_options, typed_row
from harness.spaces import OP_SETS, SPACES
from harness.tasks.registry import TASKS
from harness.yaml_files import read_yaml

# Upper bounds that catch typos (``epochs: 10000000000`` would sit at 0% forever): [003]'s
# CIFAR retraining is 600 epochs, the largest protocol in our documents.
MAX_EPOCHS = 10_000
MAX_TRIALS = 100_000
MAX_WORKERS = 1024
MAX_SEED = 2**31 - 1

EXPANDABLE = ("dataset", "space", "op_set", "method", "hp_set")
# ``hp_set: method-default`` picks each method's own default set (e.g. BOHB-DAS-single for das-single).
METHOD_DEFAULT = "method-default"
NAME_REGISTRIES = {"dataset": TASKS, "space": SPACES, "op_set": OP_SETS, "method": METHODS}

Trials = Annotated[int, Field(ge=1, le=MAX_TRIALS)]
Epochs = Annotated[int, Field(ge=1, le=MAX_EPOCHS)]
Workers = Annotated[int, Field(ge=1, le=MAX_WORKERS)]
SeedOffset = Annotated[int, Field(ge=0, le=MAX_SEED)]
NameChoice = Annotated[str, StringConstraints(min_length=1)] | Annotated[list[str], Field(min_length=1)]
StudyName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]+$", min_length=1, max_length=128)]


class StudyConfigError(ValueError):
    """A problem in a study file, phrased for the person who wrote it."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class RowEntry(_Strict):
    """One entry of ``rows:`` (or ``defaults:``) as written in the file."""

    dataset: NameChoice | None = None
    space: NameChoice | None = None
    op_set: NameChoice | None = None
    method: NameChoice | None = None
    hp_set: NameChoice | None = None
    hp_overrides: dict[str, Any] | None = None
    options: dict[str, dict[str, Any] | None] | None = None
    trials: Trials | None = None


class MirrorEntry(_Strict):
    """``mirror:``: where the study's trials are mirrored for a live view (``--optuna-storage``)."""

    optuna_storage: Annotated[str, StringConstraints(min_length=1)]


class StudyFile(_Strict):
    """A study file as written."""

    name: StudyName | None = None
    description: str = ""
    trials: Trials = 75
    seed_offset: SeedOffset = 0
    epochs: Epochs = 50
    workers: Workers = 2
    defaults: RowEntry = RowEntry()
    options: dict[str, dict[str, Any] | None] = {}
    imports: list[str] = []
    mirror: MirrorEntry | None = None
    rows: Annotated[list[RowEntry], Field(min_length=1)]


@dataclass(frozen=True)
class StudyRow:
    """A row of the study: its identity and how many seeds it runs."""

    spec: RowSpec
    trials: int


@dataclass
class StudyConfig:
    name: str
    rows: list[StudyRow]
    trials: int = 75
    epochs: int = 50
    workers: int = 2
    seed_offset: int = 0
    description: str = ""
    source: str = ""
    plugins: Plugins = Plugins()  # every worker imports these before it runs a trial
    optuna_storage: str = ""  # mirror: the Optuna storage URL of the live view ("" = none)

    def specs(self) -> list[TrialSpec]:
        """All trials, seed-major so a partial run covers every row evenly."""
        longest = max((r.trials for r in self.rows), default=0)
        return [
            r.spec.trial(self.seed_offset + s) for s in range(longest) for r in self.rows if s < r.trials
        ]


def pydantic_message(exc: ValidationError, source: str) -> str:
    """One line per problem: ``<file>: rows[0].trials: Input should be ... (got '5')``."""
    lines = []
    for err in exc.errors():
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"]).lstrip(".")
        where = where.replace(".function-after", "").replace(".list[str]", "").replace(".str", "")
        got = "" if err["type"] == "missing" else f" (got {err['input']!r})"
        message = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
        lines.append(f"{source}: {where or 'file'}: {message}{got}")
    return "\n".join(dict.fromkeys(lines))


def _validate_name(key: str, value, where: str) -> str:
    try:
        if key == "hp_set":
            return validate_hp_set_name(value)
        return NAME_REGISTRIES[key].canonical(value)
    except (KeyError, ValueError, FileNotFoundError) as exc:
        raise StudyConfigError(f"{where}.{key}: {exc}") from None


def _merge_options(base: dict, extra: dict | None) -> dict:
    merged = {g: dict(v or {}) for g, v in base.items()}
    for group, values in (extra or {}).items():
        merged.setdefault(group, {}).update(values or {})
    return merged


def parse_study(data, source: str = "<study>", overrides: dict | None = None,
                imports: list[str] | tuple[str, ...] = ()) -> StudyConfig:
    """Validate a study's parsed YAML. ``overrides`` (trials, epochs, workers) replace the file's
    values (the CLI flags); ``trials`` also replaces every row's own count. The plugins of the
    file's ``imports`` and of ``imports`` (``--import``) are loaded first: they may register the
    names the rows use."""
    if not isinstance(data, dict):
        raise StudyConfigError(f"{source}: a study file is a YAML mapping with keys {sorted(StudyFile.model_fields)}")
    try:
        study = StudyFile.model_validate(data)
    except ValidationError as exc:
        raise StudyConfigError(pydantic_message(exc, source)) from None
    try:
        plugins = load_plugins([_beside(name, source) for name in study.imports] + list(imports))
    except PluginError as exc:
        raise StudyConfigError(f"{source}: imports: {exc}") from None
    overrides = overrides or {}
    trials = overrides.get("trials", study.trials)
    epochs = overrides.get("epochs", study.epochs)
    defaults = study.defaults.model_dump(exclude_unset=True)
    rows: list[StudyRow] = []
    origin: dict[RowSpec, int] = {}
    for i, entry in enumerate(study.rows):
        where = f"{source}: rows[{i}]"
        raw = {**defaults, **entry.model_dump(exclude_unset=True)}
        raw.setdefault("hp_set", "H1")
        missing = [k for k in EXPANDABLE if raw.get(k) is None]
        if missing:
            raise StudyConfigError(f"{where}: missing {', '.join(missing)} (give it in the row or in defaults)")
        row_trials = overrides.get("trials", raw.get("trials") or trials)
        options = _merge_options(study.options, raw.get("options"))
        choices = [raw[k] if isinstance(raw[k], list) else [raw[k]] for k in EXPANDABLE]
        for combo in itertools.product(*choices):
            names = {
                k: v if (k, v) == ("hp_set", METHOD_DEFAULT) else _validate_name(k, v, where)
                for k, v in zip(EXPANDABLE, combo)
            }
            if names["hp_set"] == METHOD_DEFAULT:
                names["hp_set"] = METHODS.get(names["method"]).default_hp_set
            row = _typed(names, epochs, raw.get("hp_overrides") or {}, options, where, source, study.options)
            if row in origin:
                if origin[row] == i:  # e.g. [H1, method-default] for a method whose own default is H1
                    continue
                raise StudyConfigError(f"{where} repeats rows[{origin[row]}] ({row.label}); remove one of them")
            origin[row] = i
            rows.append(StudyRow(row, row_trials))
    config = StudyConfig(
        name=study.name or Path(source).stem, rows=rows, trials=trials, epochs=epochs,
        workers=overrides.get("workers", study.workers), seed_offset=study.seed_offset,
        description=study.description, source=source, plugins=plugins,
        optuna_storage=study.mirror.optuna_storage if study.mirror else "",
    )
    _check_rows_build(config)
    return config


def _beside(name: str, source: str) -> str:
    """A plugin file named in a study file, relative to that file's folder when it is there."""
    if not name.endswith(".py") or Path(name).is_absolute():
        return name
    candidate = Path(source).parent / name
    return str(candidate) if candidate.is_file() else name


def _typed(names: dict, epochs: int, hp_overrides: dict, options: dict, where: str, source: str,
           file_options: dict) -> RowSpec:
    """The row's typed spec; a type error names the key where the user wrote it."""
    row = RowSpec.make(**names, epochs=epochs, hp_overrides=_pin_tuned(names["hp_set"], hp_overrides),
                       options=options)
    try:
        typed_options(file_options, row)  # errors in the file-level options are named there
    except ValueTypeError as exc:
        raise StudyConfigError(f"{source}: {exc.path}: {exc.message}") from None
    try:
        return typed_row(row)
    except ValueTypeError as exc:
        raise StudyConfigError(f"{where}.{exc.path}: {exc.message}") from None


def _pin_tuned(hp_set: str, overrides: dict) -> dict:
    """A ``tuned:`` set is a file that a later tuning run may overwrite: put its values into the
    spec, so the trial id (and a resumed study) reflects the hyperparameters actually used."""
    if not hp_set.startswith(TUNED_PREFIX):
        return overrides
    folder = hp_set[len(TUNED_PREFIX):]
    load_tuned(folder)  # validates the file
    return {**tuned_values(folder), **overrides}


def _check_rows_build(study: StudyConfig) -> None:
    """Resolve each row once (values, method/space fit) before any trial runs."""
    for i, row in enumerate(study.rows):
        spec = row.spec.trial(0)
        try:
            HyperParams().replace(**spec.hp_overrides_dict)
            make_method(spec.method, spec.options_dict.get("method"))
            build_context(spec, "cpu")
        except (KeyError, ValueError, TypeError) as exc:
            raise StudyConfigError(f"{study.source}: row {i} ({row.spec.label}): {exc}") from None


def load_study(path: str | Path, overrides: dict | None = None, imports: list[str] | tuple[str, ...] = ()
               ) -> StudyConfig:
    return parse_study(read_yaml(path, StudyConfigError, "study"), str(path), overrides, imports)


def row_warnings(study: StudyConfig) -> list[str]:
    """Rows that will hardly search: the alpha warm-up takes all but the last of their epochs, so
    the architecture stays near the argmax of the random initial alpha."""
    warnings = []
    for row in study.rows:
        spec = row.spec
        method = make_method(spec.method, spec.options_dict.get("method"))
        hp = resolve_hp_set(spec.hp_set, spec.hp_overrides_dict)
        searches = getattr(method, "searches_alpha", True)
        if not searches or not hp.alpha_warmup or not 1 < spec.epochs <= hp.warmup_epochs:
            continue
        frozen = alpha_frozen_epochs(spec.epochs, hp.alpha_warmup, hp.warmup_epochs)
        warnings.append(
            f"{spec.label}: alpha is frozen for {frozen} of {spec.epochs} epochs (alpha warm-up of "
            f"{hp.warmup_epochs} epochs in {spec.hp_set}), so it moves in {spec.epochs - frozen} epoch(s) only and "
            f"the architecture stays near the argmax of the random initial alpha; use more than "
            f"{hp.warmup_epochs} epochs for a search"
        )
    return warnings
