"""Names a request may use: the model's own, plus OpenAI's as aliases.

OpenAI clients send their stock model and voice names; accepting them as aliases lets
those clients work unchanged. The voice mapping is deterministic (stock names in OpenAI's
order, dealt round-robin onto the engine's voices) so a listener hears the same voice from
every worker and every restart of one model version.
"""
from __future__ import annotations

from dataclasses import dataclass

OPENAI_MODELS = ("tts-1", "tts-1-hd", "gpt-4o-mini-tts",
                 "gpt-4o-mini-tts-2025-03-20", "gpt-4o-mini-tts-2025-12-15")
OPENAI_VOICES = ("alloy", "ash", "ballad", "coral", "echo", "fable", "onyx", "nova", "sage",
                 "shimmer", "verse", "marin", "cedar")


def model_aliases(model: str) -> tuple[str, ...]:
    """The OpenAI model names accepted for ``model``."""
    return tuple(name for name in OPENAI_MODELS if name != model)


@dataclass(frozen=True)
class Catalog:
    model: str
    voices: tuple[str, ...]
    voice_aliases: dict[str, str]

    @classmethod
    def build(cls, model: str, engine_voices: list[str]) -> Catalog:
        if not engine_voices:
            raise ValueError("the engine offers no voices")
        voices = tuple(engine_voices)
        # An engine voice that shares a stock name keeps it; the rest take turns.
        stock = [name for name in OPENAI_VOICES if name not in voices]
        aliases = {name: voices[i % len(voices)] for i, name in enumerate(stock)}
        return cls(model=model, voices=voices, voice_aliases=aliases)

    @property
    def default_voice(self) -> str:
        return self.voices[0]

    @property
    def model_aliases(self) -> tuple[str, ...]:
        return model_aliases(self.model)

    def knows_model(self, name: str) -> bool:
        return name == self.model or name in OPENAI_MODELS

    def resolve_voice(self, name: str) -> str | None:
        """The engine voice a name means, or None for a name this model does not know."""
        if name in self.voices:
            return name
        return self.voice_aliases.get(name)
