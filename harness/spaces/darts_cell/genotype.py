"""DARTS genotypes, cell edge indexing and genotype <-> mask conversion.

A genotype is DARTS's own format so results can be compared with published cells:
``Genotype(normal=[(op, input), ...], normal_concat=[2, 3, 4, 5], reduce=[...], reduce_concat=[...])``
where node j (2, 3, ...) takes the pairs 2(j-2) and 2(j-2)+1 and input 0, 1 are the cell's
two inputs ([003] section IV-B1: 2 input nodes, 4 intermediate nodes, output = concat).
JSON and ``repr`` round-trips keep it storable in trial records; parsing never calls eval.
"""

from __future__ import annotations

import ast
from collections import namedtuple
from collections.abc import Sequence

import torch

from harness.spaces.darts_cell.ops import OP_NAMES

Genotype = namedtuple("Genotype", "normal normal_concat reduce reduce_concat")

# An explicit discrete cell: (op, input, node) triples; any number of inputs per node
# (the threshold parsing of ``discretize.discretize_threshold`` is not limited to two).
CellEdges = list[tuple[str, int, int]]

STEPS = 4  # intermediate nodes per cell ([003] section IV-B1: "four intermediate nodes")


def cell_edges(steps: int = STEPS) -> tuple[tuple[int, int], ...]:
    """(input, node) of every mixed edge, node by node, inputs ascending: 14 for 4 steps."""
    return tuple((i, j) for j in range(2, steps + 2) for i in range(j))


def edge_index(node: int, source: int) -> int:
    """Index of edge source -> node in ``cell_edges`` order."""
    if not 0 <= source < node or node < 2:
        raise ValueError(f"no edge {source} -> {node}")
    return sum(range(2, node)) + source


def _pairs(raw: Sequence) -> list[tuple[str, int]]:
    return [(str(op), int(i)) for op, i in raw]


def make_genotype(normal: Sequence, reduce: Sequence, normal_concat=None, reduce_concat=None) -> Genotype:
    """A Genotype with list-of-tuple cells; concat defaults to all intermediate nodes."""
    normal, reduce = _pairs(normal), _pairs(reduce)
    if len(normal) % 2 or len(reduce) % 2:
        raise ValueError("a DARTS genotype has two (op, input) pairs per intermediate node")
    nc = list(range(2, 2 + len(normal) // 2)) if normal_concat is None else [int(i) for i in normal_concat]
    rc = list(range(2, 2 + len(reduce) // 2)) if reduce_concat is None else [int(i) for i in reduce_concat]
    return Genotype(normal, nc, reduce, rc)


def genotype_to_json(genotype: Genotype) -> dict:
    """JSON-able dict of lists: {"normal": [[op, input], ...], "normal_concat": [...], ...}."""
    return {
        "normal": [[op, int(i)] for op, i in genotype.normal],
        "normal_concat": [int(i) for i in genotype.normal_concat],
        "reduce": [[op, int(i)] for op, i in genotype.reduce],
        "reduce_concat": [int(i) for i in genotype.reduce_concat],
    }


def genotype_from_json(data: dict | Sequence) -> Genotype:
    """Inverse of ``genotype_to_json``; also accepts the 4-list [normal, normal_concat, reduce, reduce_concat]."""
    if isinstance(data, dict):
        return make_genotype(data["normal"], data["reduce"], data["normal_concat"], data["reduce_concat"])
    normal, normal_concat, reduce, reduce_concat = data
    return make_genotype(normal, reduce, normal_concat, reduce_concat)


def genotype_to_str(genotype: Genotype) -> str:
    """DARTS's printed form, e.g. ``Genotype(normal=[('sep_conv_3x3', 0), ...], normal_concat=[2, 3, 4, 5], ...)``."""
    g = make_genotype(genotype.normal, genotype.reduce, genotype.normal_concat, genotype.reduce_concat)
    return repr(g)


def genotype_from_str(text: str) -> Genotype:
    """Parse the printed form (``range(2, 6)`` is accepted for the concat lists) without eval."""
    tree = ast.parse(text.strip(), mode="eval").body
    if not (isinstance(tree, ast.Call) and isinstance(tree.func, ast.Name) and tree.func.id == "Genotype"):
        raise ValueError(f"not a Genotype(...) expression: {text[:80]!r}")
    fields = dict(zip(Genotype._fields, tree.args))
    fields.update({kw.arg: kw.value for kw in tree.keywords})
    if set(fields) != set(Genotype._fields):
        raise ValueError(f"a Genotype needs the fields {Genotype._fields}, got {sorted(fields)}")

    def value(node: ast.expr):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "range":
            return list(range(*[ast.literal_eval(a) for a in node.args]))
        return ast.literal_eval(node)

    v = {name: value(node) for name, node in fields.items()}
    return make_genotype(v["normal"], v["reduce"], v["normal_concat"], v["reduce_concat"])


def genotype_cell(genotype: Genotype, cell: str) -> tuple[CellEdges, list[int]]:
    """The (op, input, node) triples and the concat list of ``cell`` ('normal' or 'reduce')."""
    pairs = genotype.normal if cell == "normal" else genotype.reduce
    concat = genotype.normal_concat if cell == "normal" else genotype.reduce_concat
    return [(op, int(i), 2 + n // 2) for n, (op, i) in enumerate(pairs)], list(concat)


def edges_to_mask(edges: CellEdges, op_names: Sequence[str] = OP_NAMES, steps: int = STEPS) -> torch.Tensor:
    """0/1 mixing weights (n_edges, n_ops) that make a supernet cell compute exactly ``edges``."""
    mask = torch.zeros(len(cell_edges(steps)), len(op_names))
    for op, source, node in edges:
        mask[edge_index(node, source), list(op_names).index(op)] = 1.0
    return mask


def mask_to_edges(mask: torch.Tensor, op_names: Sequence[str] = OP_NAMES, steps: int = STEPS) -> CellEdges:
    """Inverse of ``edges_to_mask`` for one trial's (n_edges, n_ops) mask ('none' entries dropped)."""
    out = []
    for e, (source, node) in enumerate(cell_edges(steps)):
        for o, name in enumerate(op_names):
            if bool(mask[e, o]) and name != "none":
                out.append((name, source, node))
    return out


def genotype_mask(
    genotypes: Genotype | Sequence[Genotype], op_names: Sequence[str] = OP_NAMES
) -> tuple[torch.Tensor, torch.Tensor]:
    """(normal, reduce) masks of shape (K, n_edges, n_ops) for K genotypes, to run a supernet
    as the derived architectures with inherited weights (pass them as relaxed weights)."""
    if isinstance(genotypes, Genotype):
        genotypes = [genotypes]
    normal, reduce = [], []
    for g in genotypes:
        steps = len(g.normal) // 2
        normal.append(edges_to_mask(genotype_cell(g, "normal")[0], op_names, steps))
        reduce.append(edges_to_mask(genotype_cell(g, "reduce")[0], op_names, steps))
    return torch.stack(normal), torch.stack(reduce)
