"""ttsctl: the release control plane (CLI, runner wrapper, audit log, webhook receiver)."""
