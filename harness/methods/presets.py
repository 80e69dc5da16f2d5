"""Named method presets: each published method as a composition of components.

A preset is a factory whose keyword arguments are the method's own hyperparameters (the
coefficients METHODS.md gives, or our documented default where it says "not stated"); a
study overrides them under ``options: method:``. ``python -m harness.methods`` lists every
preset with its METHODS.md entry and the spaces it runs on; presets whose mechanism the 1D
problems cannot exercise say what they need instead.
"""

from __future__ import annotations

from harness.methods.discretization import (
    CellEdgesOrArgmax,
    PerturbationSelection,
    ThresholdDiscretization,
)
from harness.methods.early_stopping import (
    HessianEigenvalueStopping,
    ParameterFreeCountStopping,
    RankStabilityStopping,
)
from harness.methods.estimators import (
    FirstOrder,
    ImplicitNeumann,
    MixedLevel,
    SecondOrder,
    make_estimator,
)
from harness.methods.partial_channels import PartialChannelSearch
from harness.methods.perturbations import AdversarialAlpha, AuxiliarySkip, NoisyInputs, RandomSmoothing
from harness.methods.preset_registry import METHODS, Preset, make_method, preset
from harness.methods.progressive import ProgressiveSearch
from harness.methods.regularizers import (
    BetaDecay,
    CostObjective,
    L1ParameterFree,
    NoveltyTerm,
    PathRegularizer,
    ZeroOneLoss,
)
from harness.methods.relaxation import (
    GumbelSoftmaxRelaxation,
    HardConcreteGates,
    SampledPathRelaxation,
    SigmoidRelaxation,
)
from harness.methods.search import ComposedSearch

# ---------------------------------------------------------------------------------- M01-M04


# The 1D spaces, and those plus the DARTS cell space (issue 12) for presets defined on both.
ONE_D_SPACES = ("sequential", "nonsequential")
ONE_D_AND_CELLS = (*ONE_D_SPACES, "darts-cell")


@preset("das")
def das(name: str = "das", order: int = 1) -> ComposedSearch:
    return ComposedSearch(
        name=name,
        entry="M03",
        estimator=make_estimator(order),
        spaces=ONE_D_AND_CELLS,
        description="DAS of [001]: DARTS on the 1D inverse problems (first order unless order=2)",
    )


@preset("das-2nd")
def das_2nd(name: str = "das-2nd", fd_radius: float = 0.01) -> ComposedSearch:
    method = das(name, order=2)
    method.estimator = SecondOrder(fd_radius)
    method.description = "DAS with the second-order (unrolled, finite-difference) estimator"
    return method


@preset("darts")
def darts(name: str = "darts", order: int = 1, edges_per_node: int = 2) -> ComposedSearch:
    return ComposedSearch(
        name=name,
        entry="M01" if order == 1 else "M02",
        estimator=make_estimator(order),
        param_lr_schedule="cosine",
        discretization=CellEdgesOrArgmax(edges_per_node),
        spaces=ONE_D_AND_CELLS,
        description="DARTS: cosine weight lr, top-2 incoming edges per node in cells",
    )


@preset("darts-2nd")
def darts_2nd(name: str = "darts-2nd", edges_per_node: int = 2, fd_radius: float = 0.01) -> ComposedSearch:
    method = darts(name, order=2, edges_per_node=edges_per_node)
    method.estimator = SecondOrder(fd_radius)
    return method


@preset("das-single")
def das_single(name: str = "das-single", pretrain_epochs: int | None = None) -> ComposedSearch:
    return ComposedSearch(
        name=name,
        entry="M04",
        spaces=("sequential",),
        pretrained_ops=True,
        pretrain_epochs=pretrain_epochs,
        estimator=FirstOrder(),
        default_hp_set="BOHB-DAS-single",
        description="DAS-single: pre-trained frozen lgd/net layers, alpha-only search on the validation loss",
    )


# ---------------------------------------------------------------------------------- M08-M16


@preset("fair-darts")
def fair_darts(name: str = "fair-darts", w01: float = 10.0, threshold: float = 0.85) -> ComposedSearch:
    return ComposedSearch(
        name=name,
        entry="M08",
        spaces=ONE_D_AND_CELLS,
        relaxation=SigmoidRelaxation(),
        regularizers=(ZeroOneLoss(weight=w01),),
        discretization=ThresholdDiscretization(threshold),
        description="FairDARTS: independent sigmoids, zero-one loss, threshold parsing",
    )


@preset("pr-darts")
def pr_darts(
    name: str = "pr-darts",
    lambda_skip: float = PathRegularizer().lambda_skip,
    lambda_nonskip: float = PathRegularizer().lambda_nonskip,
    lambda_path: float = PathRegularizer().lambda_path,
) -> ComposedSearch:
    gates = HardConcreteGates()
    return ComposedSearch(
        name=name,
        entry="M09",
        relaxation=gates,
        regularizers=(
            PathRegularizer(lambda_skip=lambda_skip, lambda_nonskip=lambda_nonskip, lambda_path=lambda_path),
        ),
        description="PR-DARTS: stretched-clipped stochastic gates with skip / non-skip / path regularizers",
    )


@preset("proxylessnas")
def proxylessnas(name: str = "proxylessnas", flops_weight: float = 1e-3, flops_fraction: float = 0.5) -> ComposedSearch:
    return ComposedSearch(
        name=name,
        entry="M10",
        relaxation=SampledPathRelaxation(),
        regularizers=(CostObjective("flops", flops_fraction, flops_weight),),
        description=(
            "ProxylessNAS (1D adaptation): one sampled path per position (straight-through binary gates), "
            "expected FLOPs as the latency proxy"
        ),
    )


@preset("fbnet")
def fbnet(name: str = "fbnet", flops_weight: float = 1e-3, flops_fraction: float = 0.5) -> ComposedSearch:
    return ComposedSearch(
        name=name,
        entry="M11",
        relaxation=GumbelSoftmaxRelaxation.fbnet(),
        regularizers=(CostObjective("flops", flops_fraction, flops_weight),),
        description="FBNet (1D adaptation): Gumbel-softmax per layer, tau 5*exp(-0.045 epoch), FLOPs as latency",
    )


@preset("gdas")
def gdas(name: str = "gdas", tau_start: float = 10.0, tau_end: float = 0.1) -> ComposedSearch:
    return ComposedSearch(
        name=name,
        entry="M13",
        spaces=ONE_D_AND_CELLS,
        relaxation=GumbelSoftmaxRelaxation.gdas(tau_start, tau_end),
        description="GDAS: hard Gumbel-softmax samples (straight-through), temperature 10 -> 0.1",
    )


@preset("snas")
def snas(name: str = "snas", tau_start: float = 1.0, tau_end: float = 0.33) -> ComposedSearch:
    return ComposedSearch(
        name=name,
        entry="M14",
        spaces=ONE_D_AND_CELLS,
        relaxation=GumbelSoftmaxRelaxation.snas(tau_start, tau_end),
        description="SNAS (as far as the documents describe it): soft Gumbel samples, annealed temperature",
    )


@preset("pc-darts")
def pc_darts(name: str = "pc-darts", channel_fraction: int = 4) -> ComposedSearch:
    # Cells only: the 1D states have one channel, so there is no 1/k channel subset to mix.
    return PartialChannelSearch(
        name=name,
        entry="M16",
        spaces=("darts-cell",),
        channel_fraction=channel_fraction,
        description="PC-DARTS: 1/k of each edge's channels mixed (then shuffled), edge normalization beta",
    )


# ---------------------------------------------------------------------------------- M17-M19


@preset("idarts")
def idarts(name: str = "idarts", neumann_terms: int = 5, weight_steps_per_alpha_step: int = 2,
           hvp: str = "difference", fd_radius: float = 0.01) -> ComposedSearch:
    return ComposedSearch(
        name=name,
        entry="M17",
        spaces=ONE_D_AND_CELLS,
        estimator=ImplicitNeumann(terms=neumann_terms, hvp=hvp, fd_radius=fd_radius),
        weight_steps_per_alpha_step=weight_steps_per_alpha_step,
        description="iDARTS: implicit hypergradient with a truncated Neumann series",
    )


@preset("milenas")
def milenas(name: str = "milenas", chi: float = 1.0) -> ComposedSearch:
    return ComposedSearch(
        name=name,
        entry="M18",
        spaces=ONE_D_AND_CELLS,
        estimator=MixedLevel(chi),
        description="MiLeNAS: mixed-level alpha gradient, val + chi * train (first order)",
    )


@preset("e2nas")
def e2nas(name: str = "e2nas", gamma: float = NoveltyTerm().gamma) -> ComposedSearch:
    return ComposedSearch(
        name=name,
        entry="M19",
        regularizers=(NoveltyTerm(gamma=gamma),),
        description="E2NAS's novelty term on alpha (the VGAE latent space is not in the documents)",
    )


# ---------------------------------------------------------------------------------- M20-M23


@preset("beta-darts")
def beta_darts(name: str = "beta-darts", weight: float = BetaDecay().weight) -> ComposedSearch:
    return ComposedSearch(
        name=name,
        entry="M20",
        spaces=ONE_D_AND_CELLS,
        regularizers=(BetaDecay(weight=weight),),
        description="beta-DARTS: beta-decay (logsumexp) regularization of alpha",
    )


@preset("sdarts-rs")
def sdarts_rs(name: str = "sdarts-rs", epsilon: float = 0.3) -> ComposedSearch:
    return ComposedSearch(
        name=name,
        entry="M21",
        spaces=ONE_D_AND_CELLS,
        weight_perturbation=RandomSmoothing(epsilon=epsilon),
        description="SDARTS-RS: weight steps under uniformly perturbed architecture weights",
    )


@preset("sdarts-adv")
def sdarts_adv(name: str = "sdarts-adv", epsilon: float = 0.3, steps: int = 7) -> ComposedSearch:
    return ComposedSearch(
        name=name,
        entry="M21",
        spaces=ONE_D_AND_CELLS,
        weight_perturbation=AdversarialAlpha(epsilon=epsilon, steps=steps),
        description="SDARTS-ADV: weight steps under PGD-perturbed architecture weights",
    )


@preset("noisy-darts")
def noisy_darts(name: str = "noisy-darts", std: float = 0.2) -> ComposedSearch:
    return ComposedSearch(
        name=name,
        entry="M22",
        spaces=ONE_D_AND_CELLS,
        mix_hooks=(NoisyInputs(std=std),),
        description="NoisyDARTS: Gaussian noise on the inputs of the parameter-free (skip-like) ops",
    )


@preset("darts-minus")
def darts_minus(name: str = "darts-minus", beta_start: float = 1.0) -> ComposedSearch:
    return ComposedSearch(
        name=name,
        entry="M23",
        spaces=ONE_D_AND_CELLS,
        mix_hooks=(AuxiliarySkip(beta_start=beta_start, beta_end=0.0),),
        description="DARTS-: auxiliary skip branch whose coefficient decays linearly to 0",
    )


# ---------------------------------------------------------------------------------- M25-M31


@preset("darts-es")
def darts_es(name: str = "darts-es", iterations: int = 100) -> ComposedSearch:
    # iterations: power iterations per epoch where alpha is too large for the dense Hessian (cells).
    return ComposedSearch(
        name=name,
        entry="M25",
        spaces=ONE_D_AND_CELLS,
        early_stopping=HessianEigenvalueStopping(iterations=iterations),
        description="DARTS-ES: stop when the dominant Hessian eigenvalue of L_val w.r.t. alpha grows fast",
    )


@preset("r-darts")
def r_darts(name: str = "r-darts", l2_factor: float = 3.0) -> ComposedSearch:
    return ComposedSearch(
        name=name,
        entry="M25",
        spaces=ONE_D_AND_CELLS,
        weight_decay_factor=l2_factor,
        description="R-DARTS (L2): weight decay multiplied by a factor from {1, 3, 9, 27, 81}",
    )


@preset("darts-plus")
def darts_plus(
    name: str = "darts-plus", criterion: str = "rank", window: int = 10, max_parameter_free: int = 6,
    max_skip: int = 2,
) -> ComposedSearch:
    if criterion == "rank":
        stopping = RankStabilityStopping(window=window)
    elif criterion == "parameter-free":  # max_skip: M26's skip connections in the normal cell (cells)
        stopping = ParameterFreeCountStopping(threshold=max_parameter_free, skip_threshold=max_skip)
    else:
        raise ValueError(f"darts-plus criterion must be 'rank' or 'parameter-free', got {criterion!r}")
    return ComposedSearch(
        name=name,
        entry="M26",
        spaces=ONE_D_AND_CELLS,
        early_stopping=stopping,
        description="DARTS+: early stop when the alpha ranking is stable (or too many parameter-free ops)",
    )


@preset("darts-pt")
def darts_pt(name: str = "darts-pt", finetune_steps: int = 10) -> ComposedSearch:
    return ComposedSearch(
        name=name,
        entry="M27",
        spaces=ONE_D_AND_CELLS,
        discretization=PerturbationSelection(finetune_steps=finetune_steps),
        description="DARTS+PT: pick each position's op by how much masking it hurts the supernet",
    )


# Per-stage values: a study's YAML gives lists, a typed row holds tuples (both are accepted).
Counts = tuple[int, ...] | list[int]
Rates = tuple[float, ...] | list[float]


@preset("p-darts")
def p_darts(
    name: str = "p-darts",
    stage_layers: Counts = (4, 7, 10),
    stage_ops_kept: Counts = (4, 3, 2),
    stage_dropout: Rates = (0.0, 0.3, 0.6),
    cell_stage_cells: Counts = (5, 11, 17),
    cell_stage_ops_kept: Counts = (8, 5, 3),
    cell_stage_dropout: Rates = (0.1, 0.4, 0.7),
) -> ComposedSearch:
    # stage_*: the 1D spaces; cell_stage_*: the DARTS cell space (see progressive.py for both).
    return ProgressiveSearch(
        name=name,
        entry="M28",
        spaces=ONE_D_AND_CELLS,
        stage_layers=tuple(stage_layers),
        stage_ops_kept=tuple(stage_ops_kept),
        stage_dropout=tuple(stage_dropout),
        cell_stage_cells=tuple(cell_stage_cells),
        cell_stage_ops_kept=tuple(cell_stage_ops_kept),
        cell_stage_dropout=tuple(cell_stage_dropout),
        description="P-DARTS: stages of growing depth, dropping ops, dropout on skip(-like) ops",
    )


@preset("cdarts")
def cdarts(name: str = "cdarts", l1_weight: float = L1ParameterFree().weight) -> ComposedSearch:
    return ComposedSearch(
        name=name,
        entry="M31",
        regularizers=(L1ParameterFree(weight=l1_weight),),
        description="CDARTS's L1 penalty on parameter-free ops (its distillation network is not included)",
    )


import harness.methods.presets_papers  # noqa: E402, F401 - registers M43-M46 and the baselines

__all__ = ["METHODS", "Preset", "make_method", "preset"]

SEARCH_PRESETS = tuple(n for n, p in METHODS.items() if p.entry not in ("M05", "M06", "M07"))
ONE_D_PRESETS = tuple(
    n for n in SEARCH_PRESETS if set(METHODS.get(n).spaces) & set(ONE_D_SPACES) and not METHODS.get(n).needs
)
CELL_PRESETS = tuple(n for n in SEARCH_PRESETS if "darts-cell" in METHODS.get(n).spaces)
