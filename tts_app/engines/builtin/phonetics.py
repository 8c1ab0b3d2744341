"""The phoneme inventory and its acoustic targets (adult male tract; voices scale them).

Formant values follow classic measurements (Peterson & Barney; Klatt 1980). Consonants carry
the formant *loci* their neighbours glide towards, which is what makes them audible.
"""
from __future__ import annotations

import torch

VOWEL, APPROXIMANT, NASAL, FRICATIVE, STOP, AFFRICATE, ASPIRATE, SILENCE = range(8)

# Columns of the phoneme table, in order.
COLUMNS = ("f1", "f2", "f3", "f1_end", "f2_end", "f3_end", "voicing", "noise", "noise_hz",
           "noise_octaves", "duration_ms", "kind", "bandwidth_scale", "burst_ms", "aspiration_ms",
           "closure_voicing")


def _row(formants, voicing=1.0, noise=0.0, noise_hz=4000.0, octaves=2.0, ms=80.0, kind=VOWEL,
         bw=1.0, burst=0.0, aspiration=0.0, closure_voicing=0.0, end=None):
    start = list(formants)
    return [*start, *(end or start), voicing, noise, noise_hz, octaves, ms, kind, bw, burst,
            aspiration, closure_voicing]


PHONEMES: dict[str, list[float]] = {
    # vowels
    "IY": _row((270, 2290, 3010), ms=115),
    "IH": _row((390, 1990, 2550), ms=80),
    "EH": _row((530, 1840, 2480), ms=95),
    "AE": _row((660, 1720, 2410), ms=130),
    "AA": _row((730, 1090, 2440), ms=130),
    "AO": _row((570, 840, 2410), ms=130),
    "UH": _row((440, 1020, 2240), ms=85),
    "UW": _row((300, 870, 2240), ms=115),
    "AH": _row((640, 1190, 2390), ms=85),
    "AX": _row((500, 1500, 2500), ms=55),           # reduced vowel (unstressed AH)
    "ER": _row((490, 1350, 1690), ms=115),
    "EY": _row((480, 2000, 2600), end=(330, 2200, 2700), ms=140),
    "AY": _row((700, 1200, 2500), end=(400, 1950, 2600), ms=160),
    "AW": _row((700, 1250, 2500), end=(450, 900, 2300), ms=160),
    "OW": _row((520, 950, 2400), end=(380, 850, 2300), ms=140),
    "OY": _row((550, 850, 2400), end=(400, 1900, 2500), ms=170),
    # approximants
    "L": _row((360, 1000, 2500), voicing=0.7, ms=65, kind=APPROXIMANT),
    "R": _row((420, 1250, 1650), voicing=0.75, ms=65, kind=APPROXIMANT),
    "W": _row((300, 650, 2200), voicing=0.7, ms=60, kind=APPROXIMANT),
    "Y": _row((260, 2200, 3000), voicing=0.7, ms=60, kind=APPROXIMANT),
    # nasals: weak, low first formant, broad bandwidths
    "M": _row((280, 1000, 2200), voicing=0.45, ms=70, kind=NASAL, bw=2.2),
    "N": _row((280, 1600, 2600), voicing=0.45, ms=65, kind=NASAL, bw=2.2),
    "NG": _row((280, 2000, 2700), voicing=0.45, ms=75, kind=NASAL, bw=2.2),
    # fricatives
    "F": _row((340, 1100, 2080), voicing=0.0, noise=0.10, noise_hz=5000, octaves=3.0, ms=100, kind=FRICATIVE),
    "V": _row((220, 1100, 2080), voicing=0.45, noise=0.05, noise_hz=5000, octaves=3.0, ms=70, kind=FRICATIVE),
    "TH": _row((320, 1290, 2540), voicing=0.0, noise=0.08, noise_hz=6000, octaves=3.0, ms=100, kind=FRICATIVE),
    "DH": _row((270, 1290, 2540), voicing=0.5, noise=0.04, noise_hz=6000, octaves=3.0, ms=55, kind=FRICATIVE),
    "S": _row((320, 1390, 2530), voicing=0.0, noise=0.45, noise_hz=7000, octaves=1.2, ms=110, kind=FRICATIVE),
    "Z": _row((240, 1390, 2530), voicing=0.4, noise=0.28, noise_hz=7000, octaves=1.2, ms=85, kind=FRICATIVE),
    "SH": _row((300, 1840, 2750), voicing=0.0, noise=0.45, noise_hz=3600, octaves=1.3, ms=115, kind=FRICATIVE),
    "ZH": _row((300, 1840, 2750), voicing=0.4, noise=0.28, noise_hz=3600, octaves=1.3, ms=90, kind=FRICATIVE),
    "HH": _row((500, 1500, 2500), voicing=0.0, noise=0.25, ms=60, kind=ASPIRATE),
    # stops: closure, burst, then aspiration for the voiceless ones
    "P": _row((400, 1100, 2150), voicing=0.0, noise=0.35, noise_hz=1200, octaves=2.0, ms=65, kind=STOP, burst=8, aspiration=45),
    "B": _row((200, 1100, 2150), voicing=0.0, noise=0.25, noise_hz=1200, octaves=2.0, ms=55, kind=STOP, burst=6, aspiration=5, closure_voicing=0.15),
    "T": _row((400, 1600, 2600), voicing=0.0, noise=0.45, noise_hz=5000, octaves=1.5, ms=60, kind=STOP, burst=10, aspiration=50),
    "D": _row((200, 1600, 2600), voicing=0.0, noise=0.3, noise_hz=5000, octaves=1.5, ms=50, kind=STOP, burst=8, aspiration=8, closure_voicing=0.15),
    "K": _row((350, 1800, 2400), voicing=0.0, noise=0.45, noise_hz=2500, octaves=1.3, ms=65, kind=STOP, burst=15, aspiration=55),
    "G": _row((200, 1800, 2400), voicing=0.0, noise=0.3, noise_hz=2500, octaves=1.3, ms=55, kind=STOP, burst=12, aspiration=10, closure_voicing=0.15),
    "CH": _row((350, 1800, 2820), voicing=0.0, noise=0.45, noise_hz=3600, octaves=1.3, ms=50, kind=AFFRICATE, burst=70),
    "JH": _row((260, 1800, 2820), voicing=0.35, noise=0.3, noise_hz=3600, octaves=1.3, ms=45, kind=AFFRICATE, burst=55, closure_voicing=0.15),
    # silence between phrases
    "_": _row((500, 1500, 2500), voicing=0.0, ms=100, kind=SILENCE),
}
NAMES = tuple(PHONEMES)
INDEX = {name: i for i, name in enumerate(NAMES)}


def default_table() -> torch.Tensor:
    """The inventory as a [phonemes, columns] tensor, the layout stored in weights files."""
    return torch.tensor([PHONEMES[name] for name in NAMES], dtype=torch.float32)
