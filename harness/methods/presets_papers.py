"""Presets of the reference papers' own methods ([002] D-DARTS, [003] E2RNAS, [004] AllegroNAS,
DARTOpti; METHODS.md M43-M46) and the [001] baselines. Registered on import by
``harness.methods.presets``."""

from __future__ import annotations

from harness.methods.baselines import RandomArchitecture, RandomSearch, SingleOp
from harness.methods.discretization import ThresholdDiscretization
from harness.methods.early_stopping import DistanceStabilityStopping
from harness.methods.estimators import MixedLevelSecondOrder
from harness.methods.multiobjective import MGDA, WeightedSum
from harness.methods.preset_registry import preset
from harness.methods.regularizers import CostObjective, ZeroOneLoss
from harness.methods.relaxation import SigmoidRelaxation
from harness.methods.schedules import ChiRamp
from harness.methods.search import ComposedSearch

# ---------------------------------------------------------------------------------- M43-M46


@preset("e2rnas")
def e2rnas(
    name: str = "e2rnas", epsilon: float = 2 / 255, bound_fraction: float = 0.5, mgda: bool = True
) -> ComposedSearch:
    return ComposedSearch(
        name=name,
        entry="M43",
        combiner=MGDA() if mgda else WeightedSum(),
        adversarial_epsilon=epsilon,
        objective_penalties=(CostObjective("params", bound_fraction), CostObjective("flops", bound_fraction)),
        description="E2RNAS: MGDA over val loss, FGSM-measurement loss, parameter and FLOPs bounds",
    )


@preset("allegronas")
def allegronas(
    name: str = "allegronas", chi_max: float = 0.1, ramp_epochs: int = 25, fd_radius: float = 0.01
) -> ComposedSearch:
    return ComposedSearch(
        name=name,
        entry="M44",
        estimator=MixedLevelSecondOrder(chi=ChiRamp(ramp_epochs, chi_max), fd_radius=fd_radius),
        param_lr_schedule="natural-exp-cosine",
        description="AllegroNAS: second-order mixed-level alpha step with a chi ramp, natural exp. cosine lr",
    )


@preset("d-darts")
def d_darts(
    name: str = "d-darts", w01: float = 8.0, ablation_weight: float = 0.5, threshold: float = 0.85
) -> ComposedSearch:
    return ComposedSearch(
        name=name,
        entry="M45",
        relaxation=SigmoidRelaxation(),
        regularizers=(ZeroOneLoss(weight=w01),),
        ablation_weight=ablation_weight,
        discretization=ThresholdDiscretization(threshold),
        description="D-DARTS: per-cell (per-layer) alpha losses with FairDARTS's zero-one loss and the ablation loss",
    )


@preset("dartopti")
def dartopti(
    name: str = "dartopti", init_op: str = "net", init_value: float = 1.0, patience: int = 5, start_epoch: int = 10
) -> ComposedSearch:
    method = d_darts(name)
    method.entry = "M46"
    method.init_op, method.init_value = init_op, init_value
    method.early_stopping = DistanceStabilityStopping(patience=patience, start_epoch=start_epoch)
    method.description = "DARTOpti: D-DARTS from a hand-designed genotype, stopped by architecture-distance stability"
    return method


# ---------------------------------------------------------------------------------- baselines


@preset("lg-only")
def lg_only(name: str = "lg-only") -> SingleOp:
    return SingleOp(name=name, op="lgd", description="Learnable Grad. only")


@preset("nets-only")
def nets_only(name: str = "nets-only") -> SingleOp:
    return SingleOp(name=name, op="net", description="Nets only (2-layer CNN)")


@preset("random")
def random_architecture(name: str = "random") -> RandomArchitecture:
    return RandomArchitecture(name=name)


@preset("random-search")
def random_search(name: str = "random-search", k: int = 5) -> RandomSearch:
    return RandomSearch(name=name, k=k)
