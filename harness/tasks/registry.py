"""The registered tasks (a study's ``dataset``) and their option types.

Each entry holds the task's default config (a frozen dataclass whose fields are the study's
``options: problem`` keys, typed by ``harness.runner.typed``) and how to build the task.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from harness.problems import PROBLEMS, InverseProblem
from harness.registry import Registry
from harness.tasks.base import Task
from harness.tasks.classification import ClassificationTask, ImageTaskConfig
from harness.tasks.inverse1d import InverseTask


@dataclass(frozen=True)
class TaskEntry:
    config: Any  # the default config; ``config.replace(**options)`` applies a study's options
    build: Callable[[Any, Any], Task]  # (config, device) -> task
    description: str


TASKS: Registry[TaskEntry] = Registry("dataset")
for _name, _what in (("blur", "[001] 1D deblurring"), ("downsampling", "[001] 1D 4x downsampling")):
    TASKS.register(_name, TaskEntry(PROBLEMS.get(_name), lambda c, d: InverseTask(InverseProblem(c, d)), _what))
TASKS.register("cifar10", TaskEntry(ImageTaskConfig("cifar10", "cifar10"), ClassificationTask,
                                    "CIFAR-10 classification, DARTS search protocol ([003] section IV-B)"))
TASKS.register("cifar100", TaskEntry(ImageTaskConfig("cifar100", "cifar100"), ClassificationTask,
                                     "CIFAR-100 classification, DARTS search protocol"))
# The CPU proxy of issue 12: disjoint parts of the genuine MNIST test set, padded to 32 px, 3 channels.
TASKS.register("mnist-proxy", TaskEntry(
    ImageTaskConfig("mnist-proxy", "mnist", n_train=256, n_val=256, n_retrain=1024, n_test=2000,
                    proxy_from_test_set=True, batch_size=32),
    ClassificationTask, "MNIST test set cut into search / retrain / test parts (CPU proxy)"))


def make_task(dataset: str, options: dict | None = None, device="cpu") -> Task:
    """The registered task ``dataset`` with its ``options`` applied."""
    entry = TASKS.get(dataset)
    config = entry.config.replace(**options) if options else entry.config
    return entry.build(config, device)


def primary_metric(dataset: str) -> str:
    """The primary metric of a registered task (a trial that fails before its task is built still
    records the metric its row is scored by); "psnr" for an unknown name, whose trial fails anyway."""
    if dataset not in TASKS:
        return "psnr"
    return getattr(TASKS.get(dataset).build, "primary", InverseTask.primary)  # a task class names its own
