"""chipalloc.hardware: a sourced accelerator and model catalog and a calibrated roofline model.

>>> from hardware import estimate_serving
>>> est = estimate_serving("H100", "llama-3.1-70b", precision="fp8")
>>> est.n_chips, est.decode_bound
(1, 'bandwidth')
"""

from hardware.catalog import (
    CatalogError,
    Chip,
    Figure,
    Model,
    UnknownNameError,
    get_chip,
    get_model,
    list_chips,
    list_models,
)
from hardware.perf import (
    DisaggregatedEstimate,
    ServingEstimate,
    best_replica,
    cost_per_million_tokens,
    estimate_disaggregated,
    estimate_serving,
    estimate_training,
    largest_batch_within_tpot,
    smallest_replica,
    smallest_training_group,
)
from hardware.tables import ServingTables, Workload, build_serving_tables
from hardware.vendors import DEFAULT_YEAR, vendor_efficiency

__all__ = [
    "DEFAULT_YEAR", "CatalogError", "Chip", "DisaggregatedEstimate", "Figure", "Model", "ServingEstimate",
    "ServingTables",
    "UnknownNameError", "Workload", "best_replica", "build_serving_tables", "cost_per_million_tokens",
    "estimate_disaggregated",
    "estimate_serving", "estimate_training", "get_chip", "get_model", "largest_batch_within_tpot", "list_chips",
    "list_models", "smallest_replica", "smallest_training_group", "vendor_efficiency",
]
