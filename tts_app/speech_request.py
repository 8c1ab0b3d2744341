"""The OpenAI speech request body, checked field by field before any audio is made.

Pure validation with no Flask or engine in it, so every refusal is tested without a model.
An unknown model is a 400 (``model_not_found``), like an unknown voice: the endpoint exists,
the body names something this server does not serve. ``model`` and ``voice`` may be left
out (the served model and its default voice); fields OpenAI defines that change nothing
here (``instructions``) are accepted and ignored.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .catalog import Catalog
from .errors import ApiError

FORMATS = ("wav", "pcm")
OPENAI_ONLY_FORMATS = ("mp3", "opus", "aac", "flac")
MIN_SPEED, MAX_SPEED = 0.25, 4.0


@dataclass(frozen=True)
class SpeechRequest:
    text: str
    voice: str  # an engine voice, aliases already resolved
    response_format: str
    speed: float
    stream: bool


def invalid(code: str, message: str) -> ApiError:
    return ApiError(400, code, message)


def parse_speech_request(body: Any, catalog: Catalog, max_chars: int) -> SpeechRequest:
    """A checked request, or the ApiError that says what is wrong with the body."""
    if not isinstance(body, dict):
        raise invalid("invalid_request", "the request body must be a JSON object")
    text = _text(body, max_chars)
    _check_model(body, catalog)
    return SpeechRequest(
        text=text,
        voice=_voice(body, catalog),
        response_format=_format(body),
        speed=_speed(body),
        stream=_stream(body),
    )


def _text(body: dict, max_chars: int) -> str:
    text = body.get("input")
    if not isinstance(text, str):
        raise invalid("invalid_input", "'input' must be a string of text to speak")
    if not text.strip():
        raise invalid("invalid_input", "'input' is empty")
    if len(text) > max_chars:
        raise ApiError(413, "input_too_long",
                       f"'input' has {len(text)} characters; this server takes at most {max_chars}")
    return text


def _check_model(body: dict, catalog: Catalog) -> None:
    model = body.get("model", catalog.model)
    if not isinstance(model, str) or not catalog.knows_model(model):
        raise invalid("model_not_found",
                      f"model {model!r} is not served here; use {catalog.model!r} "
                      f"or one of {', '.join(catalog.model_aliases)}")


def _voice(body: dict, catalog: Catalog) -> str:
    name = body.get("voice", catalog.default_voice)
    if isinstance(name, dict):  # OpenAI's custom-voice form: {"id": "..."}
        name = name.get("id")
    voice = catalog.resolve_voice(name) if isinstance(name, str) else None
    if voice is None:
        raise invalid("voice_not_found",
                      f"voice {name!r} is unknown; GET /v1/voices lists the voices and aliases")
    return voice


def _format(body: dict) -> str:
    response_format = body.get("response_format", "wav")
    if response_format in FORMATS:
        return response_format
    if response_format in OPENAI_ONLY_FORMATS:
        message = f"response_format {response_format!r} is not supported here"
    else:
        message = f"response_format {response_format!r} is unknown"
    raise invalid("unsupported_response_format", f"{message}; use one of {', '.join(FORMATS)}")


def _speed(body: dict) -> float:
    speed = body.get("speed", 1.0)
    if isinstance(speed, bool) or not isinstance(speed, (int, float)):
        raise invalid("invalid_speed", "'speed' must be a number")
    if not MIN_SPEED <= speed <= MAX_SPEED:
        raise invalid("invalid_speed", f"'speed' must be within {MIN_SPEED} and {MAX_SPEED}")
    return float(speed)


def _stream(body: dict) -> bool:
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise invalid("invalid_stream", "'stream' must be true or false")
    stream_format = body.get("stream_format")
    if stream_format not in (None, "audio"):
        raise invalid("unsupported_stream_format", "only stream_format 'audio' is supported")
    # OpenAI's stream_format "audio" asks for raw audio as it is made: the same as stream.
    return stream or stream_format == "audio"
