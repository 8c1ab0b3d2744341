"""Prosody: phrases become frame-rate parameter tracks (formants, voicing, noise, pitch).

Each phoneme expands into one or more segments with start and end targets; tracks are
linear within a segment and then smoothed, which gives the formant transitions between
consonants and vowels that listeners rely on. Pitch follows the phrase: a declining line,
a rise on stressed content words, and a final fall (or a rise for questions).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from . import phonetics as ph
from .pronounce import pronounce
from .text import Phrase

FUNCTION_WORDS = frozenset(
    "a an the and or but of to in on at by for with from as is are was were be been am it its "
    "this that these those i you he she we they me him her us them my your his our their do does "
    "did have has had not no so if then than there here can will would should could shall may "
    "might must just".split())
LEAD_IN_S, TAIL_S = 0.06, 0.15


@dataclass
class Tracks:
    """Per-frame parameters; every tensor has the same first dimension (frames)."""
    formants: torch.Tensor    # [T, 3] Hz, after the voice's scaling
    bandwidth: torch.Tensor   # [T] scale on the default bandwidths
    voicing: torch.Tensor     # [T] harmonic amplitude
    noise: torch.Tensor       # [T] frication amplitude
    noise_hz: torch.Tensor    # [T] frication centre
    noise_octaves: torch.Tensor  # [T] frication spread
    aspiration: torch.Tensor  # [T] noise shaped by the formants (h, stop release)
    pitch: torch.Tensor       # [T] Hz

    @property
    def frames(self) -> int:
        return self.pitch.shape[0]


@dataclass
class _Segment:
    frames: int
    start: tuple[float, float, float]
    end: tuple[float, float, float]
    voicing: float = 0.0
    noise: float = 0.0
    noise_hz: float = 4000.0
    noise_octaves: float = 2.0
    aspiration: float = 0.0
    bandwidth: float = 1.0
    accent: float = 0.0        # pitch accent centred on this segment
    final: bool = False        # last vowel of its phrase


def _phones(phrase: Phrase) -> list[tuple[str, int, bool]]:
    """(phoneme, stress, accentable) for each phone of a phrase."""
    phones = []
    for word in phrase.words:
        content = word.lower() not in FUNCTION_WORDS
        for phone in pronounce(word):
            name, stress = (phone[:-1], int(phone[-1])) if phone[-1].isdigit() else (phone, -1)
            if name == "AH" and stress == 0:
                name = "AX"
            if name in ph.INDEX:
                phones.append((name, stress, content and stress == 1))
    return phones


def _segments(phrase: Phrase, frame_s: float, tempo: float, settings: dict) -> list[_Segment]:
    table = ph.PHONEMES
    phones = _phones(phrase)
    last_vowel = max((i for i, (n, _, _) in enumerate(phones)
                      if table[n][11] == ph.VOWEL), default=-1)
    segments: list[_Segment] = []

    def frames(ms: float, factor: float = 1.0) -> int:
        return max(1, round(ms / 1000.0 * factor * tempo / frame_s))

    for i, (name, stress, accentable) in enumerate(phones):
        row = dict(zip(ph.COLUMNS, table[name]))
        kind = int(row["kind"])
        start = (row["f1"], row["f2"], row["f3"])
        end = (row["f1_end"], row["f2_end"], row["f3_end"])
        following = phones[i + 1][0] if i + 1 < len(phones) else "AX"
        next_row = table[following]
        next_formants = (next_row[0], next_row[1], next_row[2])
        factor = settings["final_lengthening"] if i >= last_vowel >= 0 else 1.0
        if kind == ph.VOWEL:
            factor *= 1.1 if stress == 1 else (0.95 if stress == 2 else 0.75)
            segments.append(_Segment(frames(row["duration_ms"], factor), start, end,
                                     voicing=1.0, aspiration=settings["breathiness"],
                                     accent=settings["accent"] if accentable else 0.0,
                                     final=i == last_vowel))
        elif kind in (ph.STOP, ph.AFFRICATE):
            segments.append(_Segment(frames(row["duration_ms"], factor), start, start,
                                     voicing=row["closure_voicing"]))
            segments.append(_Segment(frames(row["burst_ms"]), start, start,
                                     voicing=row["closure_voicing"] + row["voicing"],
                                     noise=row["noise"], noise_hz=row["noise_hz"],
                                     noise_octaves=row["noise_octaves"]))
            if row["aspiration_ms"]:
                segments.append(_Segment(frames(row["aspiration_ms"]), next_formants, next_formants,
                                         aspiration=0.5 if row["closure_voicing"] == 0 else 0.2))
        elif kind == ph.ASPIRATE:
            segments.append(_Segment(frames(row["duration_ms"], factor), next_formants,
                                     next_formants, aspiration=row["noise"]))
        else:
            segments.append(_Segment(frames(row["duration_ms"], factor), start, end,
                                     voicing=row["voicing"], noise=row["noise"],
                                     noise_hz=row["noise_hz"], noise_octaves=row["noise_octaves"],
                                     bandwidth=row["bandwidth_scale"]))
    return segments


def _smooth(track: torch.Tensor, width: int) -> torch.Tensor:
    """Moving Hann-window average along frames (edges held), for coarticulation."""
    if width < 2 or track.shape[0] < 2:
        return track
    window = torch.hann_window(width + 2, periodic=False)[1:-1]
    window = window / window.sum()
    x = track.T.unsqueeze(1) if track.dim() == 2 else track.view(1, 1, -1)
    x = F.pad(x, (width // 2, width - 1 - width // 2), mode="replicate")
    y = F.conv1d(x, window.view(1, 1, -1))
    return y.squeeze(1).T if track.dim() == 2 else y.view(-1)


def build(phrases: list[Phrase], *, pitch_hz: float, formant_scale: float, tempo: float,
          frame_s: float, settings: dict) -> Tracks:
    """All phrases of an utterance as one set of tracks, with pauses between phrases."""
    silence = ph.PHONEMES["_"][:3]
    segments = [_Segment(max(1, round(LEAD_IN_S / frame_s)), silence, silence)]
    phrase_spans = []
    for phrase in phrases:
        first = len(segments)
        segments.extend(_segments(phrase, frame_s, tempo, settings))
        phrase_spans.append((first, len(segments), phrase.question))
        pause = phrase.pause * min(tempo, 1.5)
        if pause > 0:
            segments.append(_Segment(max(1, round(pause / frame_s)), silence, silence))
    segments.append(_Segment(max(1, round(TAIL_S / frame_s)), silence, silence))

    counts = torch.tensor([s.frames for s in segments])
    seg = torch.repeat_interleave(torch.arange(len(segments)), counts)
    starts = torch.cumsum(counts, 0) - counts
    frac = ((torch.arange(seg.shape[0]) - starts[seg]) / counts[seg]).unsqueeze(1)
    f_start = torch.tensor([s.start for s in segments])[seg]
    f_end = torch.tensor([s.end for s in segments])[seg]
    formants = (f_start + (f_end - f_start) * frac) * settings["formant_shift"] * formant_scale

    def column(attribute: str) -> torch.Tensor:
        return torch.tensor([float(getattr(s, attribute)) for s in segments])[seg]

    ms = lambda n: max(2, round(n / 1000.0 / frame_s))  # noqa: E731 - frames in n ms
    tracks = Tracks(
        formants=_smooth(formants, ms(45)),
        bandwidth=_smooth(column("bandwidth"), ms(30)) * settings["bandwidth_scale"],
        voicing=_smooth(column("voicing"), ms(12)),
        noise=_smooth(column("noise"), ms(6)) * settings["noise_gain"],
        noise_hz=column("noise_hz") * formant_scale,
        noise_octaves=column("noise_octaves"),
        aspiration=_smooth(column("aspiration"), ms(10)) * settings["noise_gain"],
        pitch=_pitch(segments, counts, starts, phrase_spans, pitch_hz, frame_s, settings),
    )
    return tracks


def _pitch(segments, counts, starts, phrase_spans, base: float, frame_s: float,
           settings: dict) -> torch.Tensor:
    total = int(counts.sum())
    t = torch.arange(total, dtype=torch.float32)
    pitch = torch.full((total,), base)
    for first, last, question in phrase_spans:
        if first >= last:
            continue
        a, b = int(starts[first]), int(starts[last - 1] + counts[last - 1])
        span = max(b - a, 1)
        inside = (t >= a) & (t < b)
        progress = ((t - a) / span).clamp(0, 1)
        pitch = torch.where(inside, base * (1 + settings["declination"] * (0.5 - progress)), pitch)
        for k in range(first, last):
            segment = segments[k]
            centre = float(starts[k]) + 0.4 * float(counts[k])
            width = max(float(counts[k]) * 0.7, 0.05 / frame_s)
            if segment.accent:
                pitch = pitch + base * segment.accent * torch.exp(-0.5 * ((t - centre) / width) ** 2)
            if segment.final:
                tail_start = float(starts[k])
                ramp = ((t - tail_start) / (b - tail_start + 1e-6)).clamp(0, 1) * (t < b)
                pitch = pitch * (1 + (0.35 if question else -0.12) * ramp)
        # hold the phrase's last pitch through the following pause
        pitch[b:] = torch.where(t[b:] < b + 0.4 / frame_s, pitch[b - 1], pitch[b:])
    return _smooth(pitch, max(2, round(0.03 / frame_s)))
