"""Print a pip constraints file pinning every dependency of sfn to its declared minimum.

CI installs sfn a second time with these constraints (`pip install -c`), so a floor in
pyproject.toml that the code no longer works with fails the unit tests instead of a user's install.
Usage: python .ci/floors.py [EXTRA ...] > floors.txt   (the core dependencies plus those extras')
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement


def floors(extras: list[str]) -> list[str]:
    project = tomllib.loads((Path(__file__).parent.parent / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"])
    for extra in extras:
        requirements += project["optional-dependencies"][extra]
    pins: dict[str, str] = {}
    missing = []
    for text in requirements:
        requirement = Requirement(text)
        lows = [spec.version for spec in requirement.specifier if spec.operator in (">=", "==", "~=")]
        if not lows:
            missing.append(text)
            continue
        pins[requirement.name.lower()] = f"{requirement.name}=={lows[0]}"
    if missing:
        sys.exit("error: no declared minimum (>=, == or ~=) for " + ", ".join(missing) + "; add one to pyproject.toml")
    return sorted(pins.values())


if __name__ == "__main__":
    print("\n".join(floors(sys.argv[1:])))
