"""The Optuna mirror: every stored trial of a study copied into an Optuna storage, so that
``optuna-dashboard URL`` shows a running study (``--optuna-storage URL`` or ``mirror:`` in the
study file; docs/live_view.md).

The trial store stays the one source of truth; the mirror is a view, written by a trial callback
(``harness.runner.callbacks``) in the study process after each record is stored. Layout:

* **one Optuna study per data set**, named ``<study>/<dataset>``. The rows of a data set share a
  metric and a scale, so one Optuna study can compare them: the row's identity (method, op set,
  space, hp set, epochs, every override and option) is the trial's ``params``, which makes the
  dashboard's slice, parallel-coordinate and importance plots answer "which factor moves the
  score, and how widely do the seeds of a method spread". One study per row would hold trials
  whose params are all equal (they differ only in seed), and one study for all data sets would
  mix PSNR with accuracy.
* **two values**, one-shot and architecture score, maximised or minimised as the task's primary
  metric says (``harness.tasks.metrics``). A method without a one-shot model (the random and
  fixed-network baselines) has no one-shot score: its first value is the worst one (-inf for a
  higher-is-better metric), as Optuna and the dashboard accept no NaN, and its user attribute
  ``oneshot_score`` is None. A failed trial is a FAIL trial with ``failure_reason``.
* **user attributes**: trial id, seed, status, genotype, row label, finished_at, scores, runtimes.

Resuming adds only the records not mirrored yet (keyed by trial id and ``finished_at``, so a
failed trial rerun with ``--retry-failed`` shows both attempts). Records already in the store
when a run starts are mirrored first, so the dashboard shows the whole study. When the rows
change so that a parameter's categorical choices no longer match (a method added to a resumed
study), the Optuna study is deleted and rebuilt from the store: Optuna cannot widen a
categorical parameter in place.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import re
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.runner.spec import STATUS_OK, RowSpec, setting_items, setting_text
from harness.study.config import StudyConfigError
from harness.tasks.metrics import find_metric
from harness.tasks.registry import primary_metric

MIRROR_ATTR = "harness_study"  # Optuna study user attribute: the harness study this mirror writes
INSTALL_HINT = "install the dashboard extra (pip install -e '.[dashboard]') or: pip install optuna optuna-dashboard"
SQLITE_HEADER = b"SQLite format 3\x00"
ROW_PARAMS = ("method", "op_set", "space", "hp_set", "epochs")


class MirrorError(StudyConfigError):
    """The mirror cannot be set up (Optuna missing, an unusable storage URL, a study in the way)."""


def shown(url: str) -> str:
    """``url`` with its password (``postgresql://user:secret@host``) masked, for logs and errors."""
    return re.sub(r"(://[^:/@]*):[^@/]*@", r"\1:***@", url)


def open_storage(url: str):
    """The Optuna storage of ``url``, read the way ``optuna-dashboard URL`` reads it: a database
    URL (``sqlite:///study.db``, ``postgresql://...``) or the path of a journal file (created)."""
    try:
        import optuna
    except ImportError as exc:
        raise MirrorError(f"--optuna-storage needs Optuna ({exc}): {INSTALL_HINT}") from None
    try:
        from optuna.storages.journal import JournalFileBackend
    except ImportError:  # Optuna 3.x calls it JournalFileStorage
        from optuna.storages import JournalFileStorage as JournalFileBackend
    if "://" in url:
        try:
            return optuna.storages.RDBStorage(url)
        except ImportError as exc:
            raise MirrorError(f"--optuna-storage {shown(url)}: its database driver is missing ({exc})") from None
        except Exception as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            raise MirrorError(f"--optuna-storage {shown(url)}: cannot open it as a database ({type(exc).__name__}: "
                              f"{first}); give a sqlite:///FILE.db URL or the path of a journal file") from None
    path = Path(url)
    if path.is_dir():
        raise MirrorError(f"--optuna-storage {url}: is a folder; give a journal file (e.g. {path / 'optuna.log'}) "
                          "or a database URL such as sqlite:///optuna.db")
    if path.is_file():
        with open(path, "rb") as f:
            if f.read(len(SQLITE_HEADER)) == SQLITE_HEADER:
                raise MirrorError(f"--optuna-storage {url}: is an SQLite database; write it as sqlite:///{url}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "ab"):
            pass  # create it now: optuna-dashboard opens only an existing journal file
        with warnings.catch_warnings():  # experimental in Optuna 3.x
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.JournalStorage(JournalFileBackend(os.fspath(path)))
    except OSError as exc:
        raise MirrorError(f"--optuna-storage {url}: cannot write the journal file ({exc.strerror or exc})") from None


def row_params(row: RowSpec) -> dict[str, Any]:
    """A row's identity as Optuna params: the row fields, then every override and option."""
    return {**{name: getattr(row, name) for name in ROW_PARAMS}, **dict(setting_items(row.hp_overrides_dict,
                                                                                      row.options_dict))}


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def param_space(rows: Iterable[RowSpec]) -> dict:
    """Per param, the Optuna distribution covering every row: integer or float ranges for numbers,
    categorical choices (as text) for anything else."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    values: dict[str, list] = {}
    for row in rows:
        for name, value in row_params(row).items():
            values.setdefault(name, []).append(value)
    space = {}
    for name, seen in values.items():
        if all(_number(v) and isinstance(v, int) for v in seen):
            space[name] = IntDistribution(min(seen), max(seen))
        elif all(_number(v) for v in seen):
            space[name] = FloatDistribution(float(min(seen)), float(max(seen)))
        else:
            space[name] = CategoricalDistribution(sorted({setting_text(v) for v in seen}))
    return space


def _param_value(value: Any, distribution) -> Any:
    from optuna.distributions import CategoricalDistribution, IntDistribution

    if isinstance(distribution, CategoricalDistribution):
        return setting_text(value)
    return int(value) if isinstance(distribution, IntDistribution) else float(value)


def _genotype_text(genotype: Any) -> str | None:
    if genotype is None:
        return None
    nested = any(isinstance(g, (list, dict)) for g in genotype)
    return setting_text(genotype) if nested else "-".join(map(str, genotype))


def mirror_key(attrs: dict) -> tuple:
    """What makes a record one attempt of a trial (a retried trial is a new attempt)."""
    return attrs.get("trial_id"), attrs.get("finished_at")


def frozen_trial(record: dict, space: dict, directions: list[str]):
    """The Optuna trial of one stored record."""
    import optuna

    params, distributions = {}, {}
    for name, value in row_params(RowSpec.from_record(record)).items():
        if name not in space:
            raise ValueError(f"parameter {name!r} of trial {record['trial_id']} is not in the mirror's space")
        distributions[name] = space[name]
        params[name] = _param_value(value, space[name])
    ok = record.get("status") == STATUS_OK
    values = None
    if ok:
        worst = {"maximize": -math.inf, "minimize": math.inf}
        values = [float(v) if v is not None else worst[d]
                  for v, d in zip((record.get("oneshot_score"), record.get("arch_score")), directions)]
    attrs = {
        "trial_id": record["trial_id"], "seed": record.get("seed"), "status": record.get("status"),
        "genotype": _genotype_text(record.get("genotype")), "row": RowSpec.from_record(record).label,
        "metric": record.get("metric"), "oneshot_score": record.get("oneshot_score"),
        "arch_score": record.get("arch_score"), "runtime_s": record.get("runtime_s"),
        "n_param_free_ops": record.get("n_param_free_ops"), "finished_at": record.get("finished_at"),
    }
    if not ok:
        attrs["failure_reason"] = record.get("failure_reason") or ""
    for stage in ("oneshot", "arch"):
        for name, value in (record.get(f"{stage}_metrics") or {}).items():
            attrs[f"{stage}_{name}"] = value
    state = optuna.trial.TrialState.COMPLETE if ok else optuna.trial.TrialState.FAIL
    trial = optuna.trial.create_trial(state=state, values=values, params=params, distributions=distributions,
                                      user_attrs=attrs)
    _set_times(trial, record)
    return trial


def _set_times(trial, record: dict) -> None:
    """Start and end as the trial ran (``finished_at`` minus its runtime), not when it was mirrored."""
    try:
        end = dt.datetime.fromisoformat(record["finished_at"])
    except (KeyError, TypeError, ValueError):
        return
    runtime = record.get("runtime_s")
    trial.datetime_complete = end
    trial.datetime_start = end - dt.timedelta(seconds=runtime) if _number(runtime) else end


@dataclass
class _Mirrored:
    """The Optuna study of one data set and what it holds."""

    study: Any
    space: dict
    directions: list[str]
    seen: set


class OptunaMirror:
    """A trial callback that writes each stored record into the Optuna study of its data set.

    Constructing it opens the storage and mirrors ``stored`` (the records already in the store),
    so a bad URL or a foreign study of the same name is an error before any trial runs."""

    def __init__(self, url: str, study_name: str, rows: Iterable[RowSpec], stored: Iterable[dict] = (),
                 log: Callable[[str], None] | None = None) -> None:
        self.url, self.name = url, study_name
        self.log = log or (lambda message: None)
        self.storage = open_storage(url)
        self.rows = list(rows)
        self.studies: dict[str, _Mirrored] = {}
        records = list(stored)
        datasets = dict.fromkeys([r.dataset for r in self.rows] + [r.get("dataset") for r in records])
        try:
            for dataset in datasets:
                mine = [r for r in records if r.get("dataset") == dataset]
                self.studies[dataset] = self._open(dataset, mine)
                self._add(self.studies[dataset], mine)
        except MirrorError:
            raise
        except Exception as exc:
            raise MirrorError(f"--optuna-storage {shown(url)}: cannot mirror the stored trials "
                              f"({type(exc).__name__}: {exc})") from exc

    def study_name(self, dataset: str) -> str:
        return f"{self.name}/{dataset}"

    def __call__(self, record: dict) -> None:
        dataset = record.get("dataset")
        if dataset not in self.studies:
            self.studies[dataset] = self._open(dataset, [record])
        self._add(self.studies[dataset], [record])

    def _open(self, dataset: str, records: list[dict]) -> _Mirrored:
        """Load (or create) the data set's Optuna study; rebuild it when its params changed kind."""
        import optuna

        space = param_space([r for r in self.rows if r.dataset == dataset] + [RowSpec.from_record(r) for r in records])
        metric = find_metric(primary_metric(dataset))
        directions = ["maximize" if metric.direction == "max" else "minimize"] * 2
        name = self.study_name(dataset)
        study = _load(name, self.storage)
        if study is not None:
            # An empty study with none but our attributes is ours: a run killed before it marked the study.
            foreign = set(study.user_attrs) - {MIRROR_ATTR, "metric"} or study.get_trials(deepcopy=False)
            if study.user_attrs.get(MIRROR_ATTR) != self.name and foreign:
                raise MirrorError(f"--optuna-storage {shown(self.url)}: it holds an Optuna study {name!r} that this "
                                  "harness study did not write; use another storage (file) for the mirror")
            why = _incompatible(study, directions, space)
            if why:
                self.log(f"  rebuilding Optuna study {name} from the trial store: {why}")
                optuna.delete_study(study_name=name, storage=self.storage)
                study = None
        if study is None:
            study = optuna.create_study(storage=self.storage, study_name=name, directions=directions,
                                        load_if_exists=True)
        if study.user_attrs.get(MIRROR_ATTR) != self.name:
            study.set_user_attr("metric", metric.name)
            with warnings.catch_warnings():  # experimental since Optuna 3.2, and what the dashboard labels axes by
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                study.set_metric_names([f"one-shot {metric.axis_label()}", f"architecture {metric.axis_label()}"])
            study.set_user_attr(MIRROR_ATTR, self.name)  # last: the mark says the study is set up
        seen = {mirror_key(t.user_attrs) for t in study.get_trials(deepcopy=False)}
        return _Mirrored(study, space, directions, seen)

    def _add(self, mirrored: _Mirrored, records: list[dict]) -> None:
        new = [r for r in records if mirror_key(r) not in mirrored.seen]
        if new:
            mirrored.study.add_trials([frozen_trial(r, mirrored.space, mirrored.directions) for r in new])
            mirrored.seen.update(mirror_key(r) for r in new)


def _load(name: str, storage):
    import optuna

    try:
        return optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        return None


def _incompatible(study, directions: list[str], space: dict) -> str:
    """Why the stored Optuna study cannot take trials of ``space`` ('' when it can)."""
    from optuna.distributions import check_distribution_compatibility

    if [d.name.lower() for d in study.directions] != directions:
        return "the metric's direction changed"
    checked: set[str] = set()
    for trial in study.get_trials(deepcopy=False):
        for name, distribution in trial.distributions.items():
            if name in checked:
                continue
            checked.add(name)
            if name not in space:
                continue  # a parameter of rows that are gone: those trials are kept as they are
            try:
                check_distribution_compatibility(distribution, space[name])
            except ValueError:
                return f"the values of parameter {name!r} changed"
    return ""
