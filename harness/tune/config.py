"""Tuning files (YAML): parsing and validation with messages that name the offending key.

name: tune_blur                  # results go to <out>/<name>/
description: "[001] BOHB-Blur"
dataset: blur
space: sequential
op_set: all
method: das
base_hp_set: H1                  # untuned fields (warmup_epochs, linear_end_factor) come from here
objective: architecture          # oneshot | architecture | robust
seeds: 1                         # trial seeds per evaluation (seed_offset .. seed_offset + seeds - 1)
quantile: 0.5                    # robust: which quantile of the per-seed scores
iterations: 128                  # hyperband iterations ([001] section 5.1)
min_budget: 5                    # budgets are training epochs (search and retraining)
max_budget: 50
eta: 3
workers: 1
seed: 0                          # seeds the optimizer
backend: hpbandster              # hpbandster (the paper's BOHB) | smac | optuna
options: {problem: {samples_per_evaluation: 256}}   # option groups for every trial
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from harness.methods import METHODS
from harness.methods.hyperparams import HyperParams, validate_hp_set_name
from harness.runner.spec import RowSpec
from harness.runner.trial import build_context
from harness.runner.typed import ValueTypeError, typed_row
from harness.spaces import OP_SETS, SPACES
from harness.tasks.registry import TASKS
from harness.tune.bohb import BOHB_DEFAULTS
from harness.tune.objective import FAILED_LOSS, OBJECTIVES, TrialObjective, TrialTask
from harness.tune.space import TABLE7, build_space
from harness.tune.tuner import Budgets
from harness.yaml_files import read_yaml

BACKENDS = ("hpbandster", "smac", "optuna")  # harness.tune.runlog.BACKENDS: what each needs
TOP_KEYS = {
    "name",
    "description",
    "dataset",
    "space",
    "op_set",
    "method",
    "base_hp_set",
    "hp_overrides",
    "options",
    "tune",
    "objective",
    "seeds",
    "seed_offset",
    "quantile",
    "failure_loss",
    "iterations",
    "min_budget",
    "max_budget",
    "eta",
    "workers",
    "seed",
    "backend",
    "bohb",
}
NAME_REGISTRIES = {"dataset": TASKS, "space": SPACES, "op_set": OP_SETS, "method": METHODS}


class TuneConfigError(ValueError):
    """A problem in a tuning file, phrased for the person who wrote it."""


@dataclass
class TuneConfig:
    name: str
    task: TrialTask
    objective: str = "architecture"
    seeds: int = 1
    seed_offset: int = 0
    quantile: float = 0.5
    failure_loss: float = FAILED_LOSS
    tune: list[str] | None = None
    iterations: int = 128
    min_budget: float = 5.0
    max_budget: float = 50.0
    eta: float = 3.0
    workers: int = 1
    seed: int = 0
    backend: str = "hpbandster"
    bohb: dict = field(default_factory=dict)
    description: str = ""
    source: str = ""

    @property
    def budgets(self) -> Budgets:
        return Budgets(self.min_budget, self.max_budget, self.eta)

    @property
    def trial_seeds(self) -> list[int]:
        return list(range(self.seed_offset, self.seed_offset + self.seeds))

    def make_objective(self, **kwargs) -> TrialObjective:
        return TrialObjective(
            self.task, self.objective, self.trial_seeds, self.quantile, self.failure_loss, **kwargs
        )

    def make_space(self, seed: int | None = None):
        return build_space(self.task.method, seed=self.seed if seed is None else seed, tune=self.tune)

    def to_dict(self) -> dict:
        from dataclasses import asdict

        return asdict(self)


def _int(value, where: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise TuneConfigError(f"{where} must be an integer >= {minimum}, got {value!r}")
    return value


def _number(value, where: str, minimum: float, inclusive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TuneConfigError(f"{where} must be a number, got {value!r}")
    if value < minimum or (not inclusive and value == minimum):
        raise TuneConfigError(f"{where} must be {'>=' if inclusive else '>'} {minimum}, got {value!r}")
    return float(value)


def _mapping(value, where: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise TuneConfigError(f"{where} must be a mapping, got {value!r}")
    return value


def _typed(names: dict, base_hp_set: str, data: dict, source: str) -> tuple[dict, dict]:
    """The fixed overrides and the options, typed like a study row's (``harness.runner.typed``)."""
    row = RowSpec.make(
        **names, hp_set=base_hp_set,
        hp_overrides=_mapping(data.get("hp_overrides"), f"{source}: hp_overrides"),
        options=_mapping(data.get("options"), f"{source}: options"),
    )
    try:
        row = typed_row(row)
        HyperParams().replace(**row.hp_overrides_dict)
    except ValueTypeError as exc:
        raise TuneConfigError(f"{source}: {exc.path}: {exc.message}") from None
    except (TypeError, ValueError) as exc:
        raise TuneConfigError(f"{source}: hp_overrides: {exc}") from None
    return row.hp_overrides_dict, row.options_dict


def parse_tune(data, source: str = "<tune>") -> TuneConfig:
    if not isinstance(data, dict):
        raise TuneConfigError(
            f"{source}: a tuning file is a YAML mapping with keys {', '.join(sorted(TOP_KEYS))}"
        )
    unknown = sorted(set(data) - TOP_KEYS)
    if unknown:
        raise TuneConfigError(
            f"{source}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(TOP_KEYS))}"
        )
    name = data.get("name") or Path(source).stem
    if not isinstance(name, str) or not name.replace("-", "").replace("_", "").isalnum():
        raise TuneConfigError(f"{source}: name must be letters, digits, '-' or '_', got {name!r}")
    names = {}
    for key, registry in NAME_REGISTRIES.items():
        if key not in data:
            raise TuneConfigError(f"{source}: missing {key!r} (one of {', '.join(registry.names())})")
        try:
            names[key] = registry.canonical(data[key])
        except (KeyError, ValueError) as exc:
            raise TuneConfigError(f"{source}: {key}: {exc}") from None
    try:
        base = validate_hp_set_name(data.get("base_hp_set", "H1"))
    except (KeyError, ValueError, FileNotFoundError) as exc:
        raise TuneConfigError(f"{source}: base_hp_set: {exc}") from None
    hp_overrides, options = _typed(names, base, data, source)
    objective = data.get("objective", "architecture")
    if objective not in OBJECTIVES:
        raise TuneConfigError(
            f"{source}: objective must be one of {', '.join(OBJECTIVES)}, got {objective!r}"
        )
    seeds = _int(data.get("seeds", 5 if objective == "robust" else 1), f"{source}: seeds", 1)
    quantile = _number(data.get("quantile", 0.5), f"{source}: quantile", 0.0, inclusive=True)
    if quantile > 1:
        raise TuneConfigError(f"{source}: quantile must be in [0, 1], got {quantile}")
    tune = data.get("tune")
    tunable = [p.name for p in TABLE7]
    if tune is not None:
        if not isinstance(tune, list) or not tune or not all(isinstance(t, str) for t in tune):
            raise TuneConfigError(
                f"{source}: tune must be a non-empty list of names from: {', '.join(tunable)}"
            )
        bad = sorted(set(tune) - set(tunable))
        if bad:
            raise TuneConfigError(
                f"{source}: tune: cannot tune {', '.join(bad)}; tunable: {', '.join(tunable)}"
            )
    fixed_and_tuned = sorted(set(hp_overrides) & set(tune if tune is not None else tunable))
    if fixed_and_tuned:
        raise TuneConfigError(
            f"{source}: hp_overrides fixes {', '.join(fixed_and_tuned)}, which is tuned; remove it from "
            "hp_overrides or leave it out of tune: [...]"
        )
    backend = data.get("backend", "hpbandster")
    if backend not in BACKENDS:
        raise TuneConfigError(f"{source}: backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    bohb = _mapping(data.get("bohb"), f"{source}: bohb")
    bad = sorted(set(bohb) - set(BOHB_DEFAULTS))
    if bad:
        raise TuneConfigError(
            f"{source}: bohb: unknown option(s) {', '.join(bad)}; known: {', '.join(BOHB_DEFAULTS)}"
        )
    config = TuneConfig(
        name=name,
        task=TrialTask(
            **names,
            base_hp_set=base,
            hp_overrides=hp_overrides,
            options=options,
        ),
        objective=objective,
        seeds=seeds,
        quantile=quantile,
        tune=tune,
        seed_offset=_int(data.get("seed_offset", 0), f"{source}: seed_offset", 0),
        failure_loss=_number(data.get("failure_loss", FAILED_LOSS), f"{source}: failure_loss", 0.0),
        iterations=_int(data.get("iterations", 128), f"{source}: iterations", 0),
        min_budget=_number(data.get("min_budget", 5), f"{source}: min_budget", 0.0),
        max_budget=_number(data.get("max_budget", 50), f"{source}: max_budget", 0.0),
        eta=_number(data.get("eta", 3), f"{source}: eta", 2.0, inclusive=True),
        workers=_int(data.get("workers", 1), f"{source}: workers", 1),
        seed=_int(data.get("seed", 0), f"{source}: seed", 0),
        backend=backend,
        bohb=dict(bohb),
        description=str(data.get("description", "")),
        source=source,
    )
    check(config)
    return config


def check(config: TuneConfig) -> None:
    """Validate budgets and build one trial (names, options, method/space fit) before tuning."""
    where = config.source
    try:
        config.budgets  # noqa: B018  (validates)
    except ValueError as exc:
        raise TuneConfigError(f"{where}: {exc}") from None
    objective = config.make_objective()
    space = config.make_space()
    try:
        spec = objective.specs(dict(space.get_default_configuration()), config.min_budget)[0]
        build_context(spec, "cpu")
    except (KeyError, ValueError, TypeError) as exc:
        raise TuneConfigError(f"{where}: {exc}") from None


def load_tune(path: str | Path) -> TuneConfig:
    return parse_tune(read_yaml(path, TuneConfigError, "tuning"), str(path))
