"""Where the control plane keeps its files, from the environment: one definition shared by the
CLI, the audit callback plugin (which runs inside ansible-playbook) and the webhook."""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, replace
from pathlib import Path

# The package sits in the project (an editable install, or a checkout on the control node);
# TTSCTL_PROJECT_DIR points an installed copy at the playbooks elsewhere.
PACKAGE_PROJECT_DIR = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Settings:
    project_dir: Path
    audit_db: Path
    lock_file: Path
    lock_timeout: float
    artifacts_dir: Path
    keep_artifacts: int
    run_timeout: float = 3600.0  # seconds a change may run before it is stopped; 0: no limit

    @classmethod
    def from_env(cls, environ=None) -> Settings:
        env = os.environ if environ is None else environ
        return cls(
            project_dir=Path(env.get("TTSCTL_PROJECT_DIR") or PACKAGE_PROJECT_DIR),
            audit_db=Path(env.get("TTSCTL_AUDIT_DB") or "/var/lib/ttsctl/audit.db"),
            lock_file=Path(env.get("TTSCTL_LOCK_FILE") or "/var/lib/ttsctl/release.lock"),
            lock_timeout=_number(env, "TTSCTL_LOCK_TIMEOUT", 30, float),
            artifacts_dir=Path(env.get("TTSCTL_ARTIFACTS_DIR") or "/var/lib/ttsctl/artifacts"),
            keep_artifacts=_number(env, "TTSCTL_KEEP_ARTIFACTS", 50, int),
            run_timeout=_number(env, "TTSCTL_RUN_TIMEOUT", 3600.0, float),
        )

    def with_overrides(self, **values) -> Settings:
        """A copy with the values the user gave on the command line (None: keep)."""
        return replace(self, **{k: v for k, v in values.items() if v is not None})

    def environ(self) -> dict[str, str]:
        """The same settings as environment variables, for the ansible-playbook child."""
        return {
            "TTSCTL_PROJECT_DIR": str(self.project_dir),
            "TTSCTL_AUDIT_DB": str(self.audit_db),
            "TTSCTL_LOCK_FILE": str(self.lock_file),
            "TTSCTL_LOCK_TIMEOUT": str(self.lock_timeout),
            "TTSCTL_ARTIFACTS_DIR": str(self.artifacts_dir),
            "TTSCTL_KEEP_ARTIFACTS": str(self.keep_artifacts),
            "TTSCTL_RUN_TIMEOUT": str(self.run_timeout),
        }

    @property
    def playbooks_dir(self) -> Path:
        return self.project_dir / "playbooks"


def _number(env, name: str, default, kind):
    """A setting that must be a number of at least 0: a typo must stop the run, not unlock it."""
    text = env.get(name)
    if not text:
        return default
    try:
        value = kind(text)
    except ValueError:
        value = None
    if value is None or not math.isfinite(value) or value < 0:
        raise ValueError(f"${name} must be a {'whole ' if kind is int else ''}number of at least 0, got {text!r}")
    return value
