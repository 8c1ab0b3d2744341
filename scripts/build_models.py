#!/usr/bin/env python3
"""Write the shipped model versions (models/v1.5, models/v2.0) from their settings."""
import sys
from pathlib import Path

from tts_app.engines.builtin.weights import VERSIONS, build_version

root = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent / "models")
for name in VERSIONS:
    print(build_version(name, root / f"v{name}"))
