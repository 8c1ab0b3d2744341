"""Harmonic-plus-noise vocoder: tracks become a waveform, one chunk at a time.

Voiced sound is a sum of harmonics of the pitch whose amplitudes follow a cascade formant
envelope times a glottal roll-off; frication and aspiration are band-limited noise whose
band gains follow the tracks. Phase is carried between chunks, so chunks join seamlessly
and the concatenated stream equals the whole utterance rendered at once.
"""
from __future__ import annotations

import math

import torch

from .tracks import Tracks

NOISE_BANDS = 18
NOISE_TABLE_SAMPLES = 1 << 16
HIGHER_FORMANTS = (3500.0, 4500.0)           # F4, F5 for an adult male tract
BANDWIDTHS = (80.0, 100.0, 140.0, 250.0, 300.0)
HARMONIC_GAIN = 0.035
NOISE_LEVEL = 0.06


def formant_envelope(freqs: torch.Tensor, formants: torch.Tensor, bandwidth: torch.Tensor,
                     formant_scale: float) -> torch.Tensor:
    """Cascade resonator magnitude |H(f)| (unit gain at 0 Hz) at ``freqs`` [T, K]."""
    centres = torch.cat([formants, torch.tensor(HIGHER_FORMANTS, device=formants.device)
                         .mul(formant_scale).expand(formants.shape[0], 2)], dim=1)   # [T, 5]
    widths = torch.tensor(BANDWIDTHS, device=formants.device) * bandwidth.unsqueeze(1)  # [T, 5]
    f = freqs.unsqueeze(-1)                                                 # [T, K, 1]
    c = centres.unsqueeze(1)
    w = widths.unsqueeze(1)
    magnitude = c ** 2 / torch.sqrt((c ** 2 - f ** 2) ** 2 + (w * f) ** 2)
    return magnitude.prod(-1)


class NoiseBank:
    """Band-limited noise loops, made once per model from a fixed seed."""

    def __init__(self, sample_rate: int, device: str, seed: int = 1234):
        generator = torch.Generator().manual_seed(seed)
        white = torch.randn(NOISE_TABLE_SAMPLES, generator=generator, dtype=torch.float64)
        spectrum = torch.fft.rfft(white)
        freqs = torch.fft.rfftfreq(NOISE_TABLE_SAMPLES, 1.0 / sample_rate)
        self.centres = torch.logspace(math.log10(200), math.log10(14000), NOISE_BANDS,
                                      dtype=torch.float64)
        spacing = math.log2(14000 / 200) / (NOISE_BANDS - 1)
        octave = torch.log2(freqs.clamp(min=1.0)).unsqueeze(0) - torch.log2(self.centres).unsqueeze(1)
        masks = torch.cos(torch.pi / 2 * (octave / spacing).clamp(-1, 1)) ** 2  # sums to one
        bands = torch.fft.irfft(spectrum.unsqueeze(0) * masks, n=NOISE_TABLE_SAMPLES)
        bands = bands / bands.std(dim=1, keepdim=True)
        self.table = bands.to(device=device, dtype=torch.float32)          # [B, L]
        self.centres = self.centres.to(device=device, dtype=torch.float32)

    def band_gains(self, tracks: Tracks, frames: slice, formant_scale: float) -> torch.Tensor:
        """[T, B] gain of each noise band: frication bump plus formant-shaped aspiration."""
        octave = (torch.log2(self.centres).unsqueeze(0)
                  - torch.log2(tracks.noise_hz[frames]).unsqueeze(1))
        spread = (tracks.noise_octaves[frames] / 3).unsqueeze(1)
        bump = torch.exp(-0.5 * (octave / spread) ** 2)
        bump = bump / bump.pow(2).sum(1, keepdim=True).sqrt()
        envelope = formant_envelope(self.centres.expand(bump.shape[0], -1),
                                    tracks.formants[frames], tracks.bandwidth[frames], formant_scale)
        envelope = envelope / envelope.pow(2).sum(1, keepdim=True).sqrt()
        return (tracks.noise[frames].unsqueeze(1) * bump
                + tracks.aspiration[frames].unsqueeze(1) * envelope)


class Renderer:
    """Renders one utterance's tracks chunk by chunk, keeping phase between chunks."""

    def __init__(self, tracks: Tracks, *, sample_rate: int, hop: int, formant_scale: float,
                 tilt: float, vibrato: float, noise: NoiseBank, seed: int, device: str):
        tracks = Tracks(**{name: value.to(device) for name, value in vars(tracks).items()})
        self.tracks = tracks
        self.sample_rate, self.hop = sample_rate, hop
        self.formant_scale, self.tilt = formant_scale, tilt
        self.noise = noise
        self.device = device
        self.total = (tracks.frames - 1) * hop
        self.phase = 0.0
        self.noise_offset = seed % NOISE_TABLE_SAMPLES
        t = torch.arange(tracks.frames, dtype=torch.float32, device=device) * hop / sample_rate
        wobble = vibrato * torch.sin(2 * torch.pi * 4.7 * t) + 0.5 * vibrato * torch.sin(
            2 * torch.pi * 1.3 * t + seed % 7)
        self.pitch = tracks.pitch * (1 + wobble)
        self.cutoff = min(0.45 * sample_rate, 11000.0)

    def _frames(self, start: int, stop: int) -> tuple[slice, torch.Tensor]:
        """Frames covering samples [start, stop) and each sample's position among them."""
        first = start // self.hop
        last = min(stop // self.hop + 2, self.tracks.frames)
        position = torch.arange(start, stop, device=self.device, dtype=torch.float32) / self.hop - first
        return slice(first, last), position

    @staticmethod
    def _interpolate(values: torch.Tensor, position: torch.Tensor) -> torch.Tensor:
        """Linear interpolation of frame values [F, ...] at fractional frame positions."""
        index = position.floor().long().clamp(max=values.shape[0] - 2)
        weight = (position - index).unsqueeze(-1) if values.dim() == 2 else position - index
        return values[index] * (1 - weight) + values[index + 1] * weight

    def render(self, start: int, stop: int) -> torch.Tensor:
        """Samples [start, stop) of the utterance; call in order, without gaps."""
        frames, position = self._frames(start, stop)
        tracks = self.tracks
        pitch = self.pitch[frames]
        harmonics = int(self.cutoff // float(pitch.min())) + 1
        k = torch.arange(1, harmonics + 1, device=self.device, dtype=torch.float32)
        freqs = pitch.unsqueeze(1) * k                                       # [F, K]
        envelope = formant_envelope(freqs, tracks.formants[frames], tracks.bandwidth[frames],
                                    self.formant_scale)
        amplitude = (tracks.voicing[frames].unsqueeze(1) * envelope
                     * k.pow(-self.tilt) * (freqs < self.cutoff))
        amplitude = self._interpolate(amplitude, position)                   # [N, K]
        f0 = self._interpolate(pitch, position).double()
        phase = torch.remainder(self.phase + torch.cumsum(2 * torch.pi * f0 / self.sample_rate, 0),
                                2 * torch.pi)
        self.phase = float(phase[-1])
        waves = torch.sin(phase.float().unsqueeze(1) * k)  # k * phase < 2 pi K: float32 is exact enough
        voiced = (amplitude * waves).sum(1) * HARMONIC_GAIN

        gains = self._interpolate(self.noise.band_gains(tracks, frames, self.formant_scale),
                                  position)                                  # [N, B]
        index = (torch.arange(start, stop, device=self.device) + self.noise_offset) % NOISE_TABLE_SAMPLES
        unvoiced = (gains * self.noise.table[:, index].T).sum(1) * NOISE_LEVEL
        return (voiced + unvoiced).clamp(-0.99, 0.99).cpu()
