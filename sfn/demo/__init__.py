"""`sfn demo`: the four stethoscopes on the built-in organism (or any pair), then the report."""

from sfn.demo.run import DemoResult, DemoSettings, run_demo

__all__ = ["DemoResult", "DemoSettings", "run_demo"]
