"""Written English becomes the words a speaker would say."""
import pytest

from tts_app.engines.builtin.pronounce import pronounce
from tts_app.engines.builtin.text import normalize, phrases


def words(text: str) -> str:
    return " ".join(normalize(text).split())


@pytest.mark.parametrize("written, spoken", [
    ("42", "forty two"),
    ("1,200", "one thousand two hundred"),
    ("3.5", "three point five"),
    ("$3.50", "three dollars and fifty cents"),
    ("$1", "one dollar"),
    ("45%", "forty five percent"),
    ("the 21st", "the twenty first"),
    ("in 1999", "in nineteen ninety nine"),
    ("Dr. Smith", "doctor Smith"),
    ("salt & pepper", "salt and pepper"),
])
def test_numbers_money_dates_abbreviations_and_symbols_are_spelled_out(written, spoken):
    assert words(written) == spoken


def test_punctuation_makes_phrases_with_pauses_and_questions_rise():
    result = phrases("Ready? Yes, we are. Go!")
    assert [p.words for p in result] == [("Ready",), ("Yes",), ("we", "are"), ("Go",)]
    assert result[0].question and not result[1].question
    assert result[1].pause < result[2].pause  # a comma is shorter than a full stop


def test_text_without_words_has_no_phrases():
    assert phrases("... ?! --") == []


def test_pronunciations_come_from_the_dictionary_then_spelling_then_rules():
    assert pronounce("hello") == ["HH", "AH0", "L", "OW1"]
    assert pronounce("TTS") == ["T", "IY1", "T", "IY1", "EH1", "S"]   # an acronym, spelled
    assert pronounce("blorptastic")[0] == "B"                          # rules, never nothing
    assert all(p.rstrip("012").isalpha() for p in pronounce("blorptastic"))
