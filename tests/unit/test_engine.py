"""The built-in engine speaks: deterministic, 44.1 kHz, audible, unclipped, intelligible."""
from pathlib import Path

import numpy as np
import pytest
import torch

from tts_app.engines.base import EngineError
from tts_app.model import load_model

ROOT = Path(__file__).resolve().parents[2]
SENTENCE = "The quick brown fox jumps over the lazy dog."


@pytest.fixture(scope="module")
def v15():
    return load_model(ROOT / "models/v1.5", device="cpu").engine


@pytest.fixture(scope="module")
def v20():
    return load_model(ROOT / "models/v2.0", device="cpu").engine


def band_energy(audio: torch.Tensor, low: float, high: float, sr: int = 44100) -> float:
    spectrum = torch.fft.rfft(audio.double()).abs() ** 2
    freqs = torch.fft.rfftfreq(audio.shape[0], 1 / sr)
    return float(spectrum[(freqs >= low) & (freqs < high)].sum())


def pitch_hz(audio: torch.Tensor, sr: int = 44100) -> float:
    """Median autocorrelation pitch over the loudest 40 ms frames."""
    frames = audio[: audio.shape[0] // 1764 * 1764].view(-1, 1764)
    loud = frames[frames.pow(2).mean(1) > frames.pow(2).mean(1).quantile(0.7)]
    estimates = []
    for frame in loud:
        ac = np.correlate(frame.numpy(), frame.numpy(), "full")[1763:]
        lo, hi = sr // 400, sr // 60
        estimates.append(sr / (lo + int(np.argmax(ac[lo:hi]))))
    return float(np.median(estimates))


def test_output_is_mono_float_at_44_1_khz(v15):
    audio = v15.synthesize(SENTENCE, "bram")
    assert v15.sample_rate == 44100
    assert audio.dim() == 1 and audio.dtype == torch.float32


def test_same_request_gives_same_bytes(v15):
    assert torch.equal(v15.synthesize(SENTENCE, "ada"), v15.synthesize(SENTENCE, "ada"))


def test_stream_is_one_chunk_per_token_and_equals_whole_utterance(v15):
    chunks = list(v15.stream(SENTENCE, "bram"))
    assert v15.chunk_samples == 7056  # 160 ms at 6.25 tokens a second
    assert all(c.shape[0] == 7056 for c in chunks[:-1]) and 0 < chunks[-1].shape[0] <= 7056
    assert torch.equal(torch.cat(chunks), v15.synthesize(SENTENCE, "bram"))


def test_audio_is_audible_and_not_clipped(v15, v20):
    for engine in (v15, v20):
        for voice in engine.voices():
            audio = engine.synthesize("Hello! How loud can this get? Very, very loud.", voice)
            rms = float(audio.pow(2).mean().sqrt())
            assert rms > 0.02, f"{voice} too quiet: rms {rms}"
            assert float(audio.abs().max()) < 0.95, f"{voice} clips"


def test_duration_grows_with_text_and_shrinks_with_speed(v15):
    short = v15.synthesize("Hello there.", "bram").shape[0]
    long = v15.synthesize("Hello there. " * 4, "bram").shape[0]
    fast = v15.synthesize("Hello there. " * 4, "bram", speed=2.0).shape[0]
    assert long > 3 * short
    assert 0.4 * long < fast < 0.65 * long


def test_voices_differ_in_pitch(v15):
    high = pitch_hz(v15.synthesize(SENTENCE, "ada"))
    low = pitch_hz(v15.synthesize(SENTENCE, "dov"))
    assert 150 < high < 320 and 60 < low < 130


def test_vowels_have_their_formants(v15):
    # "ee" has a high second formant, "ah" a high first one: the spectrum must show it.
    ee = v15.synthesize("see me, see me", "bram")
    ah = v15.synthesize("father, father", "bram")
    ee_ratio = band_energy(ee, 1800, 3000) / band_energy(ee, 500, 1200)
    ah_ratio = band_energy(ah, 1800, 3000) / band_energy(ah, 500, 1200)
    assert ee_ratio > 3 * ah_ratio


def test_versions_sound_measurably_different(v15, v20):
    a, b = v15.synthesize(SENTENCE, "bram"), v20.synthesize(SENTENCE, "bram")
    brightness = lambda x: band_energy(x, 1000, 4000) / band_energy(x, 0, 1000)  # noqa: E731
    assert brightness(b) > 1.2 * brightness(a)  # v2.0 is brighter
    assert b.shape[0] < a.shape[0]          # and quicker


def test_unknown_voice_and_unpronounceable_text_are_refused(v15):
    with pytest.raises(EngineError, match="unknown voice"):
        v15.synthesize("hello", "nobody")
    with pytest.raises(EngineError, match="nothing to say"):
        v15.synthesize(" ... !!! ", "bram")


def recognise(audio: torch.Tensor) -> list[str]:
    """Words an off-the-shelf recogniser (pocketsphinx, its model ships in the wheel) hears."""
    from pocketsphinx import Decoder

    import soxr

    resampled = torch.from_numpy(soxr.resample(audio.numpy(), 44100, 16000))
    raw = (resampled.clamp(-1, 1) * 32767).to(torch.int16).numpy().tobytes()
    decoder = Decoder(samprate=16000, logfn="/dev/null")
    decoder.start_utt()
    decoder.process_raw(raw, full_utt=True)
    decoder.end_utt()
    return decoder.hyp().hypstr.split() if decoder.hyp() else []


SENTENCES = [SENTENCE, "Please call Stella and ask her to bring these things with her from the store.",
             "We will roll back the new model if the error rate goes up.",
             "Open the window, the room is very warm today."]
FUNCTION_WORDS = {"the", "a", "and", "to", "is", "if", "her", "we", "up"}


def recall(engine, voice: str, transform=lambda audio: audio) -> float:
    """Share of the content words the recogniser hears, over a few sentences."""
    said = heard = 0
    for sentence in SENTENCES:
        words = {w.strip(".,").lower() for w in sentence.split()} - FUNCTION_WORDS
        said += len(words)
        heard += len(words & set(recognise(transform(engine.synthesize(sentence, voice)))))
    return heard / said


@pytest.mark.parametrize("version", ["v15", "v20"])
def test_a_speech_recogniser_hears_the_words(version, request):
    engine = request.getfixturevalue(version)
    score = recall(engine, "bram")
    # The same audio played backwards has the same spectrum and no words: the control.
    control = recall(engine, "bram", transform=lambda audio: audio.flip(0))
    assert score >= 0.15 and score > 3 * control, (score, control)
