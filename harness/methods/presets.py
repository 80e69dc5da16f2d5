"""Named method presets: each published method as a composition of components.

A preset is a factory whose keyword arguments are the method's own hyperparameters (the
coefficients METHODS.md gives, or our documented default where it says "not stated"); a
study overrides them under ``options: method:``. ``python -m harness.methods`` lists every
preset with its METHODS.md entry and the spaces it runs on; presets whose mechanism the 1D
problems cannot exercise say what they need instead.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass

from harness.methods.baselines import RandomArchitecture, RandomSearch, SingleOp
from harness.methods.discretization import (
    ArgmaxDiscretization,
    PerturbationSelection,
    ThresholdDiscretization,
    TopKEdges,
)
from harness.methods.early_stopping import (
    DistanceStabilityStopping,
    HessianEigenvalueStopping,
    ParameterFreeCountStopping,
    RankStabilityStopping,
)
from harness.methods.estimators import (
    FirstOrder,
    ImplicitNeumann,
    MixedLevel,
    MixedLevelSecondOrder,
    SecondOrder,
    make_estimator,
)
from harness.methods.multiobjective import MGDA, WeightedSum
from harness.methods.perturbations import AdversarialAlpha, AuxiliarySkip, NoisyInputs, RandomSmoothing
from harness.methods.progressive import ProgressiveSearch
from harness.methods.regularizers import (
    BetaDecay,
    CostBound,
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
from harness.methods.schedules import linear_ramp
from harness.methods.search import ComposedSearch
from harness.registry import Registry


@dataclass(frozen=True)
class Preset:
    """A registered method: metadata plus the factory that builds it from its hyperparameters."""

    name: str
    entry: str
    description: str
    spaces: tuple[str, ...]
    needs: str
    default_hp_set: str
    factory: Callable

    def hyperparameters(self) -> dict:
        return {
            p.name: p.default for p in inspect.signature(self.factory).parameters.values() if p.name != "name"
        }

    def build(self, **options):
        known = self.hyperparameters()
        unknown = sorted(set(options) - set(known))
        if unknown:
            listed = ", ".join(sorted(known)) or "none"
            raise ValueError(f"method {self.name!r} has no option(s) {', '.join(unknown)}; its options: {listed}")
        return self.factory(name=self.name, **options)


METHODS: Registry[Preset] = Registry("method")


def preset(name: str):
    """Register a factory; its default build supplies the listing's metadata."""

    def register(factory: Callable) -> Callable:
        method = factory(name=name)
        METHODS.register(
            name,
            Preset(
                name=name,
                entry=method.entry,
                description=method.description,
                spaces=tuple(method.spaces),
                needs=getattr(method, "needs", ""),
                default_hp_set=getattr(method, "default_hp_set", "H1"),
                factory=factory,
            ),
        )
        return factory

    return register


class CellEdgesOrArgmax:
    """DARTS's rule: top-k incoming edges per node in cells, argmax per layer in sequences."""

    name = "top-k-edges-or-argmax"

    def __init__(self, k: int = 2) -> None:
        self.cells, self.layers = TopKEdges(k), ArgmaxDiscretization()

    def genotype(self, space, probabilities, ops, probe=None):
        rule = self.cells if space.name == "nonsequential" and "zero" in ops else self.layers
        return rule.genotype(space, probabilities, ops)


@dataclass
class ChiRamp:
    """AllegroNAS's chi ramp ([004] Eq. 6) as a schedule callable for mixed-level estimators."""

    ramp_epochs: int = 25
    chi_max: float = 0.1
    chi_min: float = 0.0

    def __call__(self, state) -> float:
        return linear_ramp(state.epoch, self.ramp_epochs, self.chi_max, self.chi_min)


@dataclass
class CostObjective:
    """E2RNAS's parameter-count / FLOPs objective |sum_o softmax(alpha)_o c_o - bound| ([003] Eqs 5-6),
    built per trial from the 1D op costs and normalized by the costliest network, with the bound
    at ``bound_fraction`` of it (E2RNAS's bounds are absolute CIFAR sizes; see CostBound.for_ops)."""

    kind: str = "params"
    bound_fraction: float = 0.5
    weight: float = 1.0

    def build(self, ctx, space) -> CostBound:
        return CostBound.for_ops(
            self.kind,
            tuple(ctx.ops),
            space.n_positions,
            ctx.problem.config.n_points,
            ctx.problem.operator.shape[0],
            ctx.op_config,
            self.bound_fraction,
            self.weight,
        )


# ---------------------------------------------------------------------------------- M01-M04


# The presets whose whole mechanism is defined on the DARTS cell space today (issue 12 adds the rest).
ONE_D_AND_CELLS = ("sequential", "nonsequential", "darts-cell")


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
        relaxation=GumbelSoftmaxRelaxation.gdas(tau_start, tau_end),
        description="GDAS: hard Gumbel-softmax samples (straight-through), temperature 10 -> 0.1",
    )


@preset("snas")
def snas(name: str = "snas", tau_start: float = 1.0, tau_end: float = 0.33) -> ComposedSearch:
    return ComposedSearch(
        name=name,
        entry="M14",
        relaxation=GumbelSoftmaxRelaxation.snas(tau_start, tau_end),
        description="SNAS (as far as the documents describe it): soft Gumbel samples, annealed temperature",
    )


@preset("pc-darts")
def pc_darts(name: str = "pc-darts", channel_fraction: int = 4) -> ComposedSearch:
    return ComposedSearch(
        name=name,
        entry="M16",
        spaces=(),
        needs=(
            "multi-channel cell states (a CIFAR cell space): the 1D states have one channel, so there is no "
            f"1/{channel_fraction} channel subset; the mixing (partial_channel_mix) and edge normalization "
            "components exist and are tested"
        ),
        description="PC-DARTS: partial-channel mixing with edge normalization",
    )


# ---------------------------------------------------------------------------------- M17-M19


@preset("idarts")
def idarts(name: str = "idarts", neumann_terms: int = 5, weight_steps_per_alpha_step: int = 2) -> ComposedSearch:
    return ComposedSearch(
        name=name,
        entry="M17",
        estimator=ImplicitNeumann(terms=neumann_terms),
        weight_steps_per_alpha_step=weight_steps_per_alpha_step,
        description="iDARTS: implicit hypergradient with a truncated Neumann series",
    )


@preset("milenas")
def milenas(name: str = "milenas", chi: float = 1.0) -> ComposedSearch:
    return ComposedSearch(
        name=name,
        entry="M18",
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
        regularizers=(BetaDecay(weight=weight),),
        description="beta-DARTS: beta-decay (logsumexp) regularization of alpha",
    )


@preset("sdarts-rs")
def sdarts_rs(name: str = "sdarts-rs", epsilon: float = 0.3) -> ComposedSearch:
    return ComposedSearch(
        name=name,
        entry="M21",
        weight_perturbation=RandomSmoothing(epsilon=epsilon),
        description="SDARTS-RS: weight steps under uniformly perturbed architecture weights",
    )


@preset("sdarts-adv")
def sdarts_adv(name: str = "sdarts-adv", epsilon: float = 0.3, steps: int = 7) -> ComposedSearch:
    return ComposedSearch(
        name=name,
        entry="M21",
        weight_perturbation=AdversarialAlpha(epsilon=epsilon, steps=steps),
        description="SDARTS-ADV: weight steps under PGD-perturbed architecture weights",
    )


@preset("noisy-darts")
def noisy_darts(name: str = "noisy-darts", std: float = 0.2) -> ComposedSearch:
    return ComposedSearch(
        name=name,
        entry="M22",
        mix_hooks=(NoisyInputs(std=std),),
        description="NoisyDARTS: Gaussian noise on the inputs of the parameter-free (skip-like) ops",
    )


@preset("darts-minus")
def darts_minus(name: str = "darts-minus", beta_start: float = 1.0) -> ComposedSearch:
    return ComposedSearch(
        name=name,
        entry="M23",
        mix_hooks=(AuxiliarySkip(beta_start=beta_start, beta_end=0.0),),
        description="DARTS-: auxiliary skip branch whose coefficient decays linearly to 0",
    )


# ---------------------------------------------------------------------------------- M25-M31


@preset("darts-es")
def darts_es(name: str = "darts-es") -> ComposedSearch:
    return ComposedSearch(
        name=name,
        entry="M25",
        early_stopping=HessianEigenvalueStopping(),
        description="DARTS-ES: stop when the dominant Hessian eigenvalue of L_val w.r.t. alpha grows fast",
    )


@preset("r-darts")
def r_darts(name: str = "r-darts", l2_factor: float = 3.0) -> ComposedSearch:
    return ComposedSearch(
        name=name,
        entry="M25",
        weight_decay_factor=l2_factor,
        description="R-DARTS (L2): weight decay multiplied by a factor from {1, 3, 9, 27, 81}",
    )


@preset("darts-plus")
def darts_plus(
    name: str = "darts-plus", criterion: str = "rank", window: int = 10, max_parameter_free: int = 6
) -> ComposedSearch:
    if criterion == "rank":
        stopping = RankStabilityStopping(window=window)
    elif criterion == "parameter-free":
        stopping = ParameterFreeCountStopping(threshold=max_parameter_free)
    else:
        raise ValueError(f"darts-plus criterion must be 'rank' or 'parameter-free', got {criterion!r}")
    return ComposedSearch(
        name=name,
        entry="M26",
        early_stopping=stopping,
        description="DARTS+: early stop when the alpha ranking is stable (or too many parameter-free ops)",
    )


@preset("darts-pt")
def darts_pt(name: str = "darts-pt", finetune_steps: int = 10) -> ComposedSearch:
    return ComposedSearch(
        name=name,
        entry="M27",
        discretization=PerturbationSelection(finetune_steps=finetune_steps),
        description="DARTS+PT: pick each position's op by how much masking it hurts the supernet",
    )


@preset("p-darts")
def p_darts(
    name: str = "p-darts",
    stage_layers: tuple = (4, 7, 10),
    stage_ops_kept: tuple = (4, 3, 2),
    stage_dropout: tuple = (0.0, 0.3, 0.6),
) -> ComposedSearch:
    return ProgressiveSearch(
        name=name,
        entry="M28",
        stage_layers=tuple(stage_layers),
        stage_ops_kept=tuple(stage_ops_kept),
        stage_dropout=tuple(stage_dropout),
        description="P-DARTS: stages of growing depth, dropping ops, dropout on parameter-free ops",
    )


@preset("cdarts")
def cdarts(name: str = "cdarts", l1_weight: float = L1ParameterFree().weight) -> ComposedSearch:
    return ComposedSearch(
        name=name,
        entry="M31",
        regularizers=(L1ParameterFree(weight=l1_weight),),
        description="CDARTS's L1 penalty on parameter-free ops (its distillation network is not included)",
    )


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


def make_method(name: str, options: dict | None = None):
    """The preset ``name`` built with its method ``options`` (hyperparameters)."""
    return METHODS.get(name).build(**(options or {}))


SEARCH_PRESETS = tuple(n for n, p in METHODS.items() if p.entry not in ("M05", "M06", "M07"))
ONE_D_PRESETS = tuple(n for n in SEARCH_PRESETS if METHODS.get(n).spaces and not METHODS.get(n).needs)
