"""Genotypes: the discrete cell architecture a search ends with.

A genotype lists, for the normal and the reduction cell, two ``(op, input)`` genes per intermediate
node (inputs 0 and 1 are the cell inputs, 2.. the earlier intermediate nodes) and the nodes whose
outputs are concatenated. Formats read and written here:

* JSON (``dcpnas-genotype/1``), the on-disk default;
* the DARTS flat format, ``Genotype(normal=[('sep_conv_3x3', 0), ...], normal_concat=[2, 3, 4, 5], ...)``;
* the nested per-node format of the DCP-NAS authors' code, ``normal=[[(op, i), (op, j)], ...]``.
"""

from __future__ import annotations

import ast
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F

from ..errors import GenotypeError
from ..utils.bounded import read_text
from .cell import STEPS, edge_weights
from .primitives import NONE_INDEX, PRIMITIVES

FORMAT = "dcpnas-genotype/1"
CELL_TYPES = ("normal", "reduce")
#: A genotype file (JSON, or a run summary that embeds one) is far smaller than this.
FILE_LIMIT = 4 << 20
#: Longest gene or concat list read before validation (a cell has 2·STEPS genes, STEPS concat nodes).
MAX_LIST = 64


@dataclass(frozen=True)
class Genotype:
    normal: tuple[tuple[str, int], ...]
    normal_concat: tuple[int, ...]
    reduce: tuple[tuple[str, int], ...]
    reduce_concat: tuple[int, ...]

    def __post_init__(self):
        for cell in CELL_TYPES:
            object.__setattr__(self, cell, tuple((str(op), int(i)) for op, i in getattr(self, cell)))
            object.__setattr__(self, f"{cell}_concat", tuple(int(i) for i in getattr(self, f"{cell}_concat")))
        validate(self)

    def cell(self, kind: str):
        """(genes, concat) of the ``normal`` or ``reduce`` cell."""
        return getattr(self, kind), getattr(self, f"{kind}_concat")

    # -- formats ----------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {"format": FORMAT,
                "normal": [list(g) for g in self.normal], "normal_concat": list(self.normal_concat),
                "reduce": [list(g) for g in self.reduce], "reduce_concat": list(self.reduce_concat)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def to_darts(self) -> str:
        """The DARTS flat repr, as the DARTS family's ``genotypes.py`` writes it."""
        return (f"Genotype(normal={list(self.normal)}, normal_concat={list(self.normal_concat)}, "
                f"reduce={list(self.reduce)}, reduce_concat={list(self.reduce_concat)})")

    def to_nested(self) -> str:
        """The nested per-node repr of the DCP-NAS authors' code."""
        def nest(genes):
            return [[genes[2 * k], genes[2 * k + 1]] for k in range(len(genes) // 2)]
        return (f"Genotype(normal={nest(self.normal)}, normal_concat={list(self.normal_concat)}, "
                f"reduce={nest(self.reduce)}, reduce_concat={list(self.reduce_concat)})")

    def save(self, path) -> None:
        from ..utils.io import atomic_write_text
        atomic_write_text(Path(path), self.to_json() + "\n")


def validate(g: Genotype) -> None:
    """Raise GenotypeError naming the first problem: op name, input index, node count, concat."""
    for cell in CELL_TYPES:
        genes = getattr(g, cell)
        if len(genes) != 2 * STEPS:
            raise GenotypeError(f"{cell} cell has {len(genes)} genes; expected {2 * STEPS} "
                                f"(2 per intermediate node, {STEPS} nodes)")
        for k, (op, index) in enumerate(genes):
            node = k // 2
            if op not in PRIMITIVES or op == "none":
                valid = ", ".join(p for p in PRIMITIVES if p != "none")
                raise GenotypeError(f"{cell} cell, node {node + 2}: unknown operation {op!r} "
                                    f"(valid: {valid})")
            if not 0 <= index < node + 2:
                raise GenotypeError(f"{cell} cell, node {node + 2}: input {index} out of range "
                                    f"0..{node + 1}")
        # Only intermediate nodes: the cell inputs (0, 1) have another size in a reduction cell, and
        # the channel bookkeeping of the network assumes concatenated nodes of C channels each.
        concat = getattr(g, f"{cell}_concat")
        if not concat or len(set(concat)) != len(concat) or not all(2 <= c < STEPS + 2 for c in concat):
            raise GenotypeError(f"{cell}_concat {list(concat)[:MAX_LIST]} must list distinct intermediate nodes "
                                f"in 2..{STEPS + 1}")


# -- derivation -------------------------------------------------------------------------------
def derive_genotype(alpha_normal: torch.Tensor, alpha_reduce: torch.Tensor,
                    beta_normal: torch.Tensor | None = None,
                    beta_reduce: torch.Tensor | None = None) -> Genotype:
    """DARTS parsing: per node, each incoming edge's strongest non-``none`` op; keep the top-2 edges.

    Edge strength is the softmax weight of that op (the weights the supernet mixed with), times
    the edge's normalised weight ``edge_weights(β)`` when β is given (PC-DARTS edge
    normalisation; it rescales whole rows, so it changes which edges are kept, not their op).
    Genes of a node are listed strongest edge first; ties break towards the lower input index.
    """
    def parse(alpha: torch.Tensor, beta: torch.Tensor | None):
        weights = F.softmax(alpha.detach().float().cpu(), dim=-1)
        weights[:, NONE_INDEX] = -1.0
        if beta is not None:
            weights = weights * edge_weights(beta.detach().float().cpu()).unsqueeze(1)
        genes, start = [], 0
        for node in range(STEPS):
            W = weights[start:start + node + 2]
            best_w, best_op = W.max(dim=1)
            order = sorted(range(node + 2), key=lambda j: (-best_w[j].item(), j))[:2]
            genes += [(PRIMITIVES[best_op[j].item()], j) for j in order]
            start += node + 2
        return genes

    concat = list(range(2, STEPS + 2))
    return Genotype(parse(alpha_normal, beta_normal), concat, parse(alpha_reduce, beta_reduce), concat)


# -- reading ----------------------------------------------------------------------------------
def from_dict(data: dict, source: str = "genotype") -> Genotype:
    """From our JSON dict (flat or nested gene lists accepted)."""
    if not isinstance(data, dict):
        raise GenotypeError(f"{source}: expected a JSON object with normal/reduce genes")
    missing = [k for k in ("normal", "reduce") if k not in data]
    if missing:
        raise GenotypeError(f"{source}: missing key(s) {', '.join(missing)}")
    unknown = set(data) - {"format", "name", "normal", "normal_concat", "reduce", "reduce_concat"}
    if unknown:
        raise GenotypeError(f"{source}: unknown key(s) {', '.join(sorted(map(str, unknown)))[:200]}")
    if "format" in data and data["format"] != FORMAT:
        raise GenotypeError(f"{source}: format {str(data['format'])[:60]!r} is not one this dcpnas reads "
                            f"({FORMAT})")
    try:
        return Genotype(_flatten(data["normal"], source), _concat(data, "normal_concat", source),
                        _flatten(data["reduce"], source), _concat(data, "reduce_concat", source))
    except GenotypeError as e:
        if str(e).startswith(f"{source}: "):   # already names the source
            raise
        raise GenotypeError(f"{source}: {e}") from None
    except (TypeError, ValueError) as e:
        raise GenotypeError(f"{source}: malformed genes ({e})") from None


def _concat(data: dict, key: str, source: str) -> list[int]:
    """The node list ``key`` (default: every intermediate node), which must be a list of integers:
    a string, booleans or floats are refused rather than coerced."""
    value = data.get(key, list(range(2, STEPS + 2)))
    if (not isinstance(value, (list, tuple)) or len(value) > MAX_LIST
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)):
        raise GenotypeError(f"{source}: {key} must be a list of node indices (integers), got {value!r:.60}")
    return list(value)


def _flatten(genes, source: str):
    """Accept flat [(op, i), ...] or nested [[(op, i), (op, j)], ...] gene lists."""
    if not isinstance(genes, (list, tuple)):
        raise GenotypeError(f"{source}: genes must be a list, got {type(genes).__name__}")
    if len(genes) > MAX_LIST:
        raise GenotypeError(f"{source}: {len(genes)} genes; a cell has {2 * STEPS}")
    flat = []
    nested = [isinstance(g, (list, tuple)) and not (len(g) == 2 and isinstance(g[0], str)) for g in genes]
    if any(nested) and not all(nested):
        raise GenotypeError(f"{source}: genes mix the flat (op, input) and the nested per-node forms")
    for node, g in enumerate(genes):
        if (isinstance(g, (list, tuple)) and len(g) == 2 and isinstance(g[0], str)):
            flat.append(tuple(g))
        elif isinstance(g, (list, tuple)) and all(isinstance(x, (list, tuple)) for x in g):
            # Per node, exactly two genes: flattening 3, 1, 2, 2 would re-pair them into another cell.
            if len(g) != 2:
                raise GenotypeError(f"{source}: node {node + 2} lists {len(g)} genes in the nested form; each "
                                    f"node has exactly 2")
            flat.extend(tuple(x) for x in g)
        else:
            raise GenotypeError(f"{source}: cannot read gene {str(g)[:60]}; expected (op, input)")
    for op, index in flat:
        if not isinstance(op, str) or isinstance(index, bool) or not isinstance(index, int):
            raise GenotypeError(f"{source}: gene ({op!r}, {index!r}) must be (op name, input index)")
    return flat


def parse_genotype_string(text: str, source: str = "genotype") -> Genotype:
    """Parse a ``Genotype(normal=..., ...)`` repr (flat or nested) without evaluating code."""
    text = text.strip()
    try:
        call = ast.parse(text[text.index("Genotype("):].strip(), mode="eval").body
    except (ValueError, SyntaxError, RecursionError, MemoryError) as e:
        raise GenotypeError(f"{source}: not a Genotype(...) expression ({e.__class__.__name__})") from None
    if not isinstance(call, ast.Call):
        raise GenotypeError(f"{source}: not a Genotype(...) expression")
    fields = ("normal", "normal_concat", "reduce", "reduce_concat")
    values = dict(zip(fields, call.args))
    values.update({kw.arg: kw.value for kw in call.keywords})
    data = {}
    for key, node in values.items():
        if key not in fields:
            raise GenotypeError(f"{source}: unknown field {key!r}")
        data[key] = _literal(node, source)
    return from_dict(data, source)


def _literal(node, source):
    # range(2, 6) appears in the DARTS family's files for the concat lists. Its arguments must be
    # integers and its length small: range(0, 10**9) must not become a 10⁹-element list.
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "range"
            and not node.keywords):
        args = [_literal(a, source) for a in node.args]
        if not 1 <= len(args) <= 3 or not all(isinstance(a, int) and not isinstance(a, bool) for a in args):
            raise GenotypeError(f"{source}: range() takes 1 to 3 integers, got {ast.unparse(node)[:60]}")
        if len(args) == 3 and args[2] == 0:
            raise GenotypeError(f"{source}: range() step must not be zero")
        r = range(*args)
        if len(r) > MAX_LIST:
            raise GenotypeError(f"{source}: {ast.unparse(node)[:60]} has {len(r)} elements; a concat "
                                f"list has at most {STEPS}")
        return list(r)
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, RecursionError, MemoryError):
        raise GenotypeError(f"{source}: only literal values are allowed in a genotype") from None


#: name -> Genotype; ``dcpnas.space.named`` fills it as the package loads (it builds on this module).
NAMED_GENOTYPES: dict[str, Genotype] = {}


def load_genotype(spec) -> Genotype:
    """A Genotype from a name (see ``dcpnas.space.named``), a file (.json or a Genotype repr) or
    a ``Genotype(...)`` string."""
    if isinstance(spec, Genotype):
        return spec
    spec = str(spec)
    if spec in NAMED_GENOTYPES:
        return NAMED_GENOTYPES[spec]
    if "Genotype(" in spec:
        return parse_genotype_string(spec)
    path = Path(spec)
    if not path.exists():
        names = ", ".join(NAMED_GENOTYPES)
        raise GenotypeError(f"genotype {spec!r} is neither a file nor a known name ({names})")
    # Bounded, regular files only: /dev/zero or a FIFO must not hang or fill the memory.
    text = read_text(path, what="genotype file", limit=FILE_LIMIT, error=GenotypeError)
    if "Genotype(" in text:
        return parse_genotype_string(text, str(path))
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise GenotypeError(f"{path}: invalid JSON at line {e.lineno} column {e.colno}") from None
    except RecursionError:  # [[[[... nested deeper than any genotype
        raise GenotypeError(f"{path}: JSON nested too deeply to be a genotype") from None
    if isinstance(data, dict) and "genotype" in data and "normal" not in data:
        data = data["genotype"]  # a run summary that embeds the genotype
    return from_dict(data, str(path))


def genotype_ops(genotype: Genotype) -> Sequence[str]:
    return [op for op, _ in genotype.normal + genotype.reduce]
