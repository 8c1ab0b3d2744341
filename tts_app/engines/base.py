"""The engine interface: the model knows nothing of HTTP, the HTTP layer nothing of tensors."""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator

import torch


class EngineError(ValueError):
    """Input the engine cannot speak (unknown voice, nothing pronounceable)."""


class GenerationError(RuntimeError):
    """The model failed on input it should speak (runaway or silent audio): the version's
    fault, not the listener's, so it answers 500 and counts against the version."""


class Engine(ABC):
    """A loaded model version that speaks.

    Audio is a 1-D float32 tensor on the CPU, values in [-1, 1], at ``sample_rate``.
    ``stream`` yields one chunk per token (``sample_rate / token_rate`` samples, the last one
    shorter) and the concatenated chunks equal ``synthesize`` exactly.
    """

    sample_rate: int
    token_rate: float

    @property
    def chunk_samples(self) -> int:
        return round(self.sample_rate / self.token_rate)

    @abstractmethod
    def voices(self) -> list[str]:
        """Names of the voices this model speaks with, the default first."""

    @abstractmethod
    def stream(self, text: str, voice: str, speed: float = 1.0) -> Iterator[torch.Tensor]:
        """Yield the utterance token by token, the first as soon as it is ready."""

    def synthesize(self, text: str, voice: str, speed: float = 1.0) -> torch.Tensor:
        """The whole utterance at once."""
        chunks = list(self.stream(text, voice, speed))
        return torch.cat(chunks) if chunks else torch.zeros(0)

    def warmup(self) -> None:
        """Run one short utterance so the first real request pays no one-off costs."""
        self.synthesize("Warm up.", self.voices()[0])

    @abstractmethod
    def describe(self) -> dict:
        """Engine facts for /version: name and device at least."""
