"""Rows of a Hugging Face hub dataset from what a user types: `org/name`, `org/name:config`, `@revision`."""

from __future__ import annotations

import re
from typing import Any

from sfn.errors import SfnError

DATASET_ID = re.compile(r"(?P<dataset>[A-Za-z0-9][\w.-]*/[\w.-]+)(?::(?P<config>[\w.-]+))?(?:@(?P<revision>[\w./-]+))?")
# Without a config, a dataset with several takes the one its authors mark as the usual one:
# `default`, or GSM8K's `main` (beside `socratic`).
USUAL_CONFIGS = ("default", "main")


def is_dataset_id(text: str) -> bool:
    return DATASET_ID.fullmatch(text) is not None


def load_hub_rows(spec: str, split: str = "train", *, hint: str = "download it elsewhere and pass a local file") -> list[dict[str, Any]]:
    """The rows of split `split` of `org/name[:config][@revision]`, read through `datasets`."""
    match = DATASET_ID.fullmatch(spec)
    if match is None:
        raise SfnError(f"{spec!r} is neither a local file nor a hub dataset id like 'org/name' or 'org/name:config'")
    import datasets

    dataset, config, revision = match["dataset"], match["config"], match["revision"]
    try:
        if config is None:
            names = datasets.get_dataset_config_names(dataset, revision=revision)
            if len(names) == 1:
                config = names[0]
            elif names:
                config = next((name for name in USUAL_CONFIGS if name in names), None)
                if config is None:
                    raise SfnError(f"dataset {dataset!r} has configs {', '.join(names)}; name one as '{dataset}:CONFIG'")
        table = datasets.load_dataset(dataset, config, split=split, revision=revision)
    except SfnError:
        raise
    except Exception as error:  # noqa: BLE001 - offline, gated, renamed, no such split: all end the same way
        first = str(error).splitlines()[0] if str(error) else ""
        raise SfnError(f"could not load dataset {spec!r} from the Hugging Face hub ({type(error).__name__}: {first}); {hint}") from None
    return [dict(row) for row in table]
