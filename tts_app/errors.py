"""Every error the product's HTTP services answer, in one place and one JSON shape.

``{"error": {"message", "type", "code"}}`` is OpenAI's shape, so its clients show our
messages. Nothing unexpected leaks a traceback: it is logged here and answered 500.
The TTS service and the rollback webhook both register these handlers; each names the
exceptions of its own domain that map to a status and code.
"""
from __future__ import annotations

import logging

from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)

# Codes for the HTTP errors werkzeug raises before our views run.
HTTP_CODES = {
    400: "invalid_json",
    404: "not_found",
    405: "method_not_allowed",
    413: "request_too_large",
    415: "unsupported_media_type",
}


class ApiError(Exception):
    """A request the API refuses, with the status and code clients can act on."""

    def __init__(self, status: int, code: str, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def error_type(status: int) -> str:
    if status == 503:
        return "service_unavailable"
    return "server_error" if status >= 500 else "invalid_request_error"


def error_response(status: int, code: str, message: str, headers: dict | None = None):
    body = {"error": {"message": message, "type": error_type(status), "code": code}}
    response = jsonify(body)
    response.status_code = status
    response.headers.update(headers or {})
    return response


def register_error_handlers(app: Flask, known: dict[type[Exception], tuple[int, str]] | None = None) -> None:
    """Handlers for ApiError, HTTP errors and anything unexpected; ``known`` maps a domain
    exception to its (status, code), its message being the exception's text."""
    @app.errorhandler(ApiError)
    def api_error(exc: ApiError):
        return error_response(exc.status, exc.code, exc.message, exc.headers)

    for exception, (status, code) in (known or {}).items():
        app.register_error_handler(
            exception, lambda exc, status=status, code=code: error_response(status, code, str(exc)))

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        status = exc.code or 500
        code = HTTP_CODES.get(status, (exc.name or "error").lower().replace(" ", "_"))
        headers = {key: value for key, value in exc.get_headers() if key == "Allow"}
        return error_response(status, code, exc.description or exc.name, headers)

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        log.exception("unhandled error")
        return error_response(500, "internal_error", "internal server error")
