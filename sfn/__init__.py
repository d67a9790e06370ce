"""sfn: Stethoscope for Networks - find which modules of a transformer LLM carry which ability."""

__version__ = "0.1.0"
