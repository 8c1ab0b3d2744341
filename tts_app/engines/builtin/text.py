"""Text normalisation: turn written English into words and phrase breaks a speaker would say."""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from num2words import num2words

ABBREVIATIONS = {
    "mr": "mister", "mrs": "missus", "ms": "miz", "dr": "doctor", "st": "saint",
    "prof": "professor", "jr": "junior", "sr": "senior", "vs": "versus", "etc": "et cetera",
    "inc": "incorporated", "ltd": "limited", "co": "company", "no": "number", "approx": "approximately",
    "dept": "department", "est": "established", "min": "minutes", "sec": "seconds", "hr": "hours",
    "kg": "kilograms", "km": "kilometres", "ft": "feet", "lb": "pounds", "e.g": "for example",
    "i.e": "that is",
}
SYMBOLS = {
    "&": " and ", "@": " at ", "+": " plus ", "=": " equals ", "#": " number ",
    "°": " degrees ", "×": " times ", "/": " slash ",
}
CURRENCIES = {"$": ("dollar", "dollars"), "€": ("euro", "euros"), "£": ("pound", "pounds")}
# Pause after a break, in seconds, and whether the phrase ends as a question.
BREAKS = {",": 0.18, ";": 0.26, ":": 0.26, "—": 0.22, "-": 0.0, ".": 0.38, "!": 0.38, "?": 0.38,
          "\n": 0.38}

_ABBREV_RE = re.compile(r"\b(" + "|".join(re.escape(a) for a in sorted(ABBREVIATIONS, key=len, reverse=True)) + r")\.", re.I)
_CURRENCY_RE = re.compile(r"([$€£])\s?(\d[\d,]*(?:\.\d+)?)")
_PERCENT_RE = re.compile(r"(\d[\d,]*(?:\.\d+)?)\s?%")
_ORDINAL_RE = re.compile(r"\b(\d+)(st|nd|rd|th)\b", re.I)
_YEAR_RE = re.compile(r"\b(1[1-9]\d\d|20\d\d)\b(?!\.\d)")
_NUMBER_RE = re.compile(r"\d[\d,]*(?:\.\d+)?")
_TOKEN_RE = re.compile(r"[A-Za-z]+(?:'[A-Za-z]+)*|[,;:.!?\n—]")


@dataclass(frozen=True)
class Phrase:
    words: tuple[str, ...]
    pause: float          # silence after the phrase, seconds
    question: bool        # ends with "?": the pitch rises instead of falling


def _words(number, **kwargs) -> str:
    """num2words without the commas and hyphens that would read as phrase breaks."""
    return " " + num2words(number, **kwargs).replace(",", "").replace("-", " ") + " "


def _number(match: re.Match) -> str:
    text = match.group(0).replace(",", "")
    try:
        return _words(float(text) if "." in text else int(text))
    except (ValueError, OverflowError, NotImplementedError):
        return " ".join(_words(int(d)) for d in text if d.isdigit())


def _currency(match: re.Match) -> str:
    singular, plural = CURRENCIES[match.group(1)]
    amount = match.group(2).replace(",", "")
    whole, _, cents = amount.partition(".")
    words = f"{_words(int(whole))} {singular if int(whole) == 1 else plural}"
    if cents and int(cents):
        words += f" and {_words(int(cents[:2].ljust(2, '0')))} cents"
    return words


def normalize(text: str) -> str:
    """Spell out numbers, money, ordinals, years, abbreviations and symbols."""
    text = unicodedata.normalize("NFKC", text)
    text = text.replace("’", "'").replace("‘", "'").replace("–", "—")
    text = _ABBREV_RE.sub(lambda m: ABBREVIATIONS[m.group(1).lower()], text)
    text = _CURRENCY_RE.sub(_currency, text)
    text = _PERCENT_RE.sub(lambda m: f"{m.group(1)} percent", text)
    text = _ORDINAL_RE.sub(lambda m: _words(int(m.group(1)), to="ordinal"), text)
    text = _YEAR_RE.sub(lambda m: _words(int(m.group(1)), to="year"), text)
    text = _NUMBER_RE.sub(_number, text)
    for symbol, words in SYMBOLS.items():
        text = text.replace(symbol, words)
    return text


def phrases(text: str) -> list[Phrase]:
    """Words grouped into phrases at punctuation, with the pause each break earns."""
    result: list[Phrase] = []
    words: list[str] = []
    for token in _TOKEN_RE.findall(normalize(text)):
        if token in BREAKS:
            if words:
                result.append(Phrase(tuple(words), BREAKS[token], token == "?"))
                words = []
            elif result and BREAKS[token] > result[-1].pause:
                last = result[-1]
                result[-1] = Phrase(last.words, BREAKS[token], last.question or token == "?")
        else:
            words.append(token.replace("-", " "))
    if words:
        result.append(Phrase(tuple(words), BREAKS["."], False))
    return result
