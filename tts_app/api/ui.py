"""``GET /``: a page to type text, pick a voice and listen, for people checking a release."""
from __future__ import annotations

from flask import Blueprint, current_app

bp = Blueprint("ui", __name__)


@bp.get("/")
def index():
    return current_app.send_static_file("index.html")
