"""`sfn demo`: the four stethoscopes on the built-in organism (or any pair), then the report."""

from sfn.lazy import lazy_exports

# Loaded on first use: the package's light modules (the CLI's option lists) must not import torch.
lazy_exports(
    __name__,
    {
        "DemoResult": "sfn.demo.run",
        "DemoSettings": "sfn.demo.run",
        "run_demo": "sfn.demo.run",
    },
)
