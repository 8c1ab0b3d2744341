"""Fault injection, off by default: builds a deliberately bad release candidate.

A canary rollout has to be rehearsed against a candidate that fails in known ways, so these
knobs make one from the same image. Each is read from the environment once at start:

- ``TTS_FAULT_ERROR_RATE`` (0..1): that fraction of speech requests is answered 500.
- ``TTS_FAULT_LATENCY_MS``: extra delay added to every speech request.
- ``TTS_FAULT_SILENCE`` (1): the audio is replaced by zeros of the same length.
- ``TTS_FAULT_MEMORY_GROWTH_MB``: each speech request allocates that many MB and keeps it
  (GPU memory on CUDA, host memory otherwise), a leak for memory alerts to catch.
"""
from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass

import torch

ENV_PREFIX = "TTS_FAULT_"


class InjectedFault(RuntimeError):
    """The error a request was chosen to fail with; answered 500 like any server error."""


@dataclass(frozen=True)
class FaultSettings:
    error_rate: float = 0.0
    latency_ms: int = 0
    silence: bool = False
    memory_growth_mb: int = 0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> FaultSettings:
        """Settings from ``TTS_FAULT_*``; a malformed value is an error, never silently off."""

        def read(name: str, parse, default):
            raw = environ.get(ENV_PREFIX + name, "").strip()
            if not raw:
                return default
            try:
                return parse(raw)
            except ValueError:
                raise ValueError(f"{ENV_PREFIX}{name}={raw!r} is not a valid value") from None

        settings = cls(
            error_rate=read("ERROR_RATE", float, 0.0),
            latency_ms=read("LATENCY_MS", int, 0),
            silence=read("SILENCE", _parse_bool, False),
            memory_growth_mb=read("MEMORY_GROWTH_MB", int, 0),
        )
        settings.validate()
        return settings

    def validate(self) -> None:
        if not 0.0 <= self.error_rate <= 1.0:
            raise ValueError(f"{ENV_PREFIX}ERROR_RATE must be within 0..1, not {self.error_rate}")
        if self.latency_ms < 0:
            raise ValueError(f"{ENV_PREFIX}LATENCY_MS must not be negative")
        if self.memory_growth_mb < 0:
            raise ValueError(f"{ENV_PREFIX}MEMORY_GROWTH_MB must not be negative")

    def active(self) -> dict:
        """Only the faults switched on, as /version shows them."""
        off = FaultSettings()
        return {name: value for name, value in vars(self).items() if value != getattr(off, name)}


def _parse_bool(raw: str) -> bool:
    value = raw.lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(raw)


class FaultInjector:
    """Applies the settings to speech requests within one worker process."""

    def __init__(self, settings: FaultSettings, device: str = "cpu"):
        self.settings = settings
        self.device = device
        self._lock = threading.Lock()
        self._error_debt = 0.0
        self._hoard: list[torch.Tensor] = []  # kept on purpose: the leak is the fault

    def before_speech(self) -> None:
        """Delay, leak and maybe fail one speech request, as the settings ask."""
        settings = self.settings
        if settings.latency_ms:
            time.sleep(settings.latency_ms / 1000.0)
        if settings.memory_growth_mb:
            # ones, not empty: the pages must be touched to count as used memory.
            block = torch.ones(settings.memory_growth_mb * 1024 * 1024, dtype=torch.uint8,
                               device=self.device)
            with self._lock:
                self._hoard.append(block)
        if settings.error_rate and self._next_request_fails():
            raise InjectedFault("injected fault: TTS_FAULT_ERROR_RATE")

    def _next_request_fails(self) -> bool:
        # Error diffusion rather than dice: exactly the asked fraction of requests fails,
        # evenly spread, so a canary and a test see the same rate from the first requests.
        with self._lock:
            self._error_debt += self.settings.error_rate
            if self._error_debt >= 1.0 - 1e-9:
                self._error_debt -= 1.0
                return True
            return False

    def shape(self, audio: torch.Tensor) -> torch.Tensor:
        """The audio a client gets: silence of the same length when that fault is on."""
        return torch.zeros_like(audio) if self.settings.silence else audio

    @property
    def held_bytes(self) -> int:
        with self._lock:
            return sum(block.numel() for block in self._hoard)
