"""The values surgery's options accept, in a module that imports nothing heavy: `sfn merge -h` and
`sfn destroy -h` list them without loading torch."""

METHODS = ("zero", "reinit", "remove")
DEFAULT_SHARD_SIZE = "5GB"
# --dtype spelling -> torch dtype attribute (`output.DTYPES` maps them to the dtypes themselves)
DTYPE_NAMES = {
    "float32": "float32",
    "fp32": "float32",
    "float16": "float16",
    "fp16": "float16",
    "half": "float16",
    "bfloat16": "bfloat16",
    "bf16": "bfloat16",
}
