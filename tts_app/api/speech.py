"""``POST /v1/audio/speech``: OpenAI's speech endpoint, whole or streamed as it is made.

The order of checks is the order of cost: body shape, model readiness, fields, then a
concurrency slot; only an admitted request meets the fault injector and the engine.
"""
from __future__ import annotations

import time
from collections.abc import Iterator

from flask import Blueprint, Response, request

from .. import metrics
from ..audio import CONTENT_TYPES, encode, pcm16, wav_header
from ..engines.base import Engine
from ..errors import ApiError
from ..faults import FaultInjector
from ..limits import Lease
from ..service import current_service
from ..speech_request import SpeechRequest, parse_speech_request

bp = Blueprint("speech", __name__)


@bp.post("/v1/audio/speech")
def create_speech():
    service = current_service()
    body = _json_body()
    model, catalog = service.require_model()
    speech = parse_speech_request(body, catalog, service.config.max_chars)
    lease = service.limiter.try_acquire()
    if lease is None:
        raise ApiError(503, "server_busy",
                       f"this worker already runs {service.limiter.limit} speech requests",
                       {"Retry-After": str(service.config.retry_after_seconds)})
    # The slot is held while audio is made, not while bytes travel: a whole answer frees it
    # once built, so a client's next request never finds its own last one still counted; a
    # stream frees it after its last token (or when the client goes away).
    try:
        service.faults.before_speech()
        if speech.stream:
            response = _streamed(model.engine, service.faults, speech, lease)
        else:
            response = _whole(model.engine, service.faults, speech)
    except BaseException:
        lease.release()
        raise
    if not speech.stream:
        lease.release()
    response.call_on_close(lease.release)
    response.call_on_close(lambda: metrics.update_memory(service.device))
    return response


def _json_body():
    if not request.is_json:
        raise ApiError(415, "unsupported_media_type",
                       "send the request body as JSON with Content-Type: application/json")
    body = request.get_json(silent=True)
    if body is None:
        raise ApiError(400, "invalid_json", "the request body is not valid JSON")
    return body


def _whole(engine: Engine, faults: FaultInjector, speech: SpeechRequest) -> Response:
    started = time.perf_counter()
    audio = engine.synthesize(speech.text, speech.voice, speech.speed)
    metrics.observe_speech(audio.numel() / engine.sample_rate, time.perf_counter() - started)
    body = encode(faults.shape(audio), engine.sample_rate, speech.response_format)
    return Response(body, content_type=CONTENT_TYPES[speech.response_format])


def _streamed(engine: Engine, faults: FaultInjector, speech: SpeechRequest, lease: Lease) -> Response:
    """Chunked audio, the first chunk as soon as the engine yields its first token."""
    tokens = engine.stream(speech.text, speech.voice, speech.speed)
    started = time.perf_counter()
    # Pull the first token before answering, so a text the engine refuses is still a 400.
    first = next(tokens, None)
    synthesis_seconds = time.perf_counter() - started

    def chunks() -> Iterator[bytes]:
        nonlocal synthesis_seconds
        samples = 0
        head = wav_header(engine.sample_rate, None) if speech.response_format == "wav" else b""
        chunk = first
        try:
            while chunk is not None:
                samples += chunk.numel()
                yield head + pcm16(faults.shape(chunk))
                head = b""
                resumed = time.perf_counter()
                chunk = next(tokens, None)
                synthesis_seconds += time.perf_counter() - resumed
            if head:  # nothing to say at all: still a valid, empty WAV stream
                yield head
            metrics.observe_speech(samples / engine.sample_rate, synthesis_seconds)
        finally:
            lease.release()
            close = getattr(tokens, "close", None)
            if close:
                close()  # the client left early: stop the engine making audio nobody hears

    response = Response(chunks(), content_type=CONTENT_TYPES[speech.response_format])
    response.headers["Cache-Control"] = "no-store"
    return response
