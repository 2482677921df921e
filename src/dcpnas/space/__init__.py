"""The DCP-NAS search space: operations, cells, supernet, genotypes, derived networks."""

from .cell import NUM_EDGES, STEPS, DerivedCell, SearchCell, edge_index
from .genotype import Genotype, derive_genotype, load_genotype, parse_genotype_string
from .named import NAMED_GENOTYPES
from .primitives import PARAMETRIC, PRIMITIVES, SCOPES, OpStyle, build_op
from .supernet import Supernet

__all__ = ["DerivedCell", "Genotype", "NAMED_GENOTYPES", "NUM_EDGES", "OpStyle", "PARAMETRIC",
           "PRIMITIVES", "SCOPES", "STEPS", "SearchCell", "Supernet", "build_op", "derive_genotype",
           "edge_index", "load_genotype", "parse_genotype_string"]
