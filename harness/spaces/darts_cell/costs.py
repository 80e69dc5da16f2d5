"""Parameters and FLOPs of a derived (evaluation) network, as the papers' tables report them.

* params: counted from the modules, without the auxiliary head (it is dropped after training;
  [003] Table I and [004] Table 3 report params of the final model, in M). BatchNorm running
  statistics are buffers, not parameters.
* FLOPs: ``torch.utils.flop_counter.FlopCounterMode`` on a 1-image forward in eval mode. It
  counts convolutions and matrix products at 2 FLOPs per multiply-add, with the group count
  (so depthwise convs exactly), and ignores BN, ReLU, pooling and additions. ``macs`` is half
  of it: the "multiply-adds" that [002] and [004] tables report ("+x (M)"). This is not
  [003]'s analytic per-op formula (IV-B2), which also counts per-pixel terms such as 2CHW.
"""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from harness.spaces.darts_cell.genotype import Genotype
from harness.spaces.darts_cell.networks import EvalConfig, EvalNetwork


def count_params(network: EvalNetwork, include_auxiliary: bool = False) -> int:
    """Trainable parameters of ``network``; the auxiliary head only if asked."""
    aux = set() if include_auxiliary or network.auxiliary is None else {id(p) for p in network.auxiliary.parameters()}
    return sum(p.numel() for p in network.parameters() if id(p) not in aux)


def count_flops(network: EvalNetwork, image_size: int = 32) -> int:
    """FLOPs (2 per multiply-add) of one image through ``network`` in eval mode (no aux head)."""
    was_training = network.training
    network.eval()
    x = torch.zeros(1, network.config.in_channels, image_size, image_size)
    counter = FlopCounterMode(display=False)
    try:
        with torch.no_grad(), counter:
            network(x)
    finally:
        network.train(was_training)
    return int(counter.get_total_flops())


def derived_costs(genotype: Genotype, config: EvalConfig = EvalConfig(), image_size: int = 32) -> dict[str, int]:
    """{"params", "flops", "macs"} of the evaluation network of ``genotype`` (default: 20 cells,
    36 channels, CIFAR's 32 px, [003] IV-B3)."""
    network = EvalNetwork(genotype, config)
    flops = count_flops(network, image_size)
    return {"params": count_params(network), "flops": flops, "macs": flops // 2}
