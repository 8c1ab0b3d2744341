"""Audio encodings the HTTP API serves: WAV (RIFF, 16-bit PCM) and raw 16-bit PCM."""
from __future__ import annotations

import struct

import torch

CONTENT_TYPES = {"wav": "audio/wav", "pcm": "audio/pcm"}
STREAMING_SIZE = 0xFFFFFFFF  # RIFF sizes for a stream whose length is not known yet


def pcm16(audio: torch.Tensor) -> bytes:
    """Little-endian signed 16-bit samples, clipped to full scale."""
    ints = (audio.clamp(-1.0, 1.0) * 32767.0).round().to(torch.int16)
    return ints.numpy().astype("<i2").tobytes()


def wav_header(sample_rate: int, data_bytes: int | None = None) -> bytes:
    """A 44-byte RIFF header for mono 16-bit PCM; ``None`` marks a stream of unknown length."""
    data_size = STREAMING_SIZE if data_bytes is None else data_bytes
    riff_size = STREAMING_SIZE if data_bytes is None else 36 + data_bytes
    return (
        b"RIFF" + struct.pack("<I", riff_size) + b"WAVE"
        + b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, sample_rate, sample_rate * 2, 2, 16)
        + b"data" + struct.pack("<I", data_size)
    )


def encode(audio: torch.Tensor, sample_rate: int, response_format: str) -> bytes:
    """A whole utterance in the requested format."""
    body = pcm16(audio)
    if response_format == "wav":
        return wav_header(sample_rate, len(body)) + body
    return body

