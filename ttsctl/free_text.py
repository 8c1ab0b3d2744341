"""Text from outside (a reason, an operator name, an alert's fields, any extra var) is data.

Ansible renders extra vars as trusted templates, so free text must never travel as one:
ttsctl and the webhook hand the operator and the reason to the playbooks through the
environment (``TTSCTL_OPERATOR``, ``TTSCTL_REASON``), which playbooks/vars/release.yml reads
with ``lookup('ansible.builtin.env', ...)``, whose result Ansible never renders. Anything that
does arrive as an extra var is checked here, by the runner before a run and by the audit
callback inside every ansible-playbook, and refused when it could run as code.
"""
from __future__ import annotations

import unicodedata

OPERATOR_ENV = "TTSCTL_OPERATOR"
REASON_ENV = "TTSCTL_REASON"
OPERATOR_LIMIT = 64
REASON_LIMIT = 400

# What makes Jinja (and so Ansible) read a string as a template rather than as text.
TEMPLATE_MARKERS = ("{{", "{%", "{#")
# Where ansible-playbook puts the words of ``-e reason=two words`` after the first.
SPLIT_VALUE_KEY = "_raw_params"


class Rejected(ValueError):
    """Input that would not be taken as plain data; nothing was run."""


_NOT_TEXT = ("Cc", "Cf", "Cs", "Co", "Cn")  # control, format, surrogate, private, unassigned


def clean(text: object, limit: int = REASON_LIMIT) -> str:
    """One line of printable text: control and format characters dropped, whitespace runs
    (newlines, tabs) made one space, at most ``limit`` characters."""
    kept = "".join(" " if char.isspace() else char for char in str(text if text is not None else "")
                   if char.isspace() or unicodedata.category(char) not in _NOT_TEXT)
    line = " ".join(kept.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def is_clean(text: str, limit: int = REASON_LIMIT) -> bool:
    """Printable characters and plain spaces only, at most ``limit`` of them."""
    return len(text) <= limit and all(
        char == " " or (not char.isspace() and unicodedata.category(char) not in _NOT_TEXT) for char in text)


def holds_template(value: object) -> bool:
    """Whether a string anywhere in the value would be rendered as a template."""
    if isinstance(value, str):
        return any(marker in value for marker in TEMPLATE_MARKERS)
    if isinstance(value, dict):
        return any(holds_template(k) or holds_template(v) for k, v in value.items())
    if isinstance(value, (list, tuple, set)):
        return any(holds_template(item) for item in value)
    return False


def problems(extra_vars: dict, environ: dict | None = None) -> list[str]:
    """Why these extra vars (and the free text in the environment) cannot be run; empty when
    they can. The messages tell the operator what to type instead."""
    found = []
    for key, value in sorted(extra_vars.items(), key=lambda item: str(item[0])):
        if key == SPLIT_VALUE_KEY:
            found.append(f"an extra var was split at a space (the words {str(value)!r} were left over): "
                         "quote the whole value, as in -e 'reason=\"two words\"', or set "
                         f"{REASON_ENV}=\"two words\"")
        elif holds_template(key) or holds_template(value):
            found.append(f"extra var {key!r} holds template markup ({', '.join(TEMPLATE_MARKERS)}), which "
                         f"Ansible would run as code: give free text through ttsctl or {REASON_ENV}")
    for key, limit in (("operator", OPERATOR_LIMIT), ("reason", REASON_LIMIT)):
        value = extra_vars.get(key)
        if isinstance(value, str) and not is_clean(value, limit):
            found.append(f"extra var {key!r} must be one line of at most {limit} printable characters")
    env = environ or {}
    for name, limit in ((OPERATOR_ENV, OPERATOR_LIMIT), (REASON_ENV, REASON_LIMIT)):
        value = env.get(name)
        if value and not is_clean(value, limit):
            found.append(f"${name} must be one line of at most {limit} printable characters")
    return found


def refuse_unsafe(extra_vars: dict, environ: dict | None = None) -> None:
    """Raise Rejected, naming every problem, unless the input can be run as data."""
    found = problems(extra_vars, environ)
    if found:
        raise Rejected("; ".join(found) + "; nothing was changed")
