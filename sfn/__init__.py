"""sfn: Stethoscope for Networks - find which modules of a transformer LLM carry which ability.

The public API is loaded lazily, so `import sfn` stays fast and pulls in only what is used. No public
name is also the name of a subpackage or module of sfn: importing `sfn.x` binds `sfn.x` to the
module, which would shadow a function of that name (tests/test_api.py keeps it so).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "open_checkpoint": "sfn.io",
    "load_model": "sfn.io.load_model",
    "module_map": "sfn.registry",
    "module_map_of": "sfn.registry",
    "select": "sfn.registry",
    "Selector": "sfn.registry",
    "modules": "sfn.inspect",
    "ModulesResult": "sfn.inspect",
    "delta": "sfn.stethoscopes.delta",
    "DeltaResult": "sfn.stethoscopes.delta",
    "summarize": "sfn.stethoscopes.delta",
    "SfnError": "sfn.errors",
    "freeze": "sfn.stethoscopes.freeze",
    "evaluate": "sfn.eval",
    "grade": "sfn.eval",
    "rescore": "sfn.eval",
    "score_answer": "sfn.eval",
    "EvalConfig": "sfn.eval",
    "register_benchmark": "sfn.eval",
    "run_demo": "sfn.demo",
    "DemoSettings": "sfn.demo",
    "write_report": "sfn.report",
    "build_organism": "sfn.organism.build",
    "FreezeConfig": "sfn.stethoscopes.freeze",
    "map": "sfn.experiments.maps",
    "MapResult": "sfn.experiments.maps",
    "write_map": "sfn.experiments.map_outputs",
    "sweep": "sfn.experiments",
    **{
        name: "sfn.stethoscopes.surgery"
        for name in (
            "merge", "merged", "destroy", "destroyed", "extract_plugin", "apply_plugin", "read_plugin",
            "PluggableModel", "WeightEdit", "MergePlan", "MergeResult", "DestroyResult", "Plugin",
        )
    },
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'sfn' has no attribute {name!r}")
