"""Hostile input that must never reach a 5xx: the JSON guard and the validation-error answer.

Python's ``json`` reads ``NaN``, ``Infinity``, ``-Infinity`` and ``1e999`` as non-finite floats
and ``"\\ud800"`` as a string with a lone surrogate; neither can be written back as JSON or
UTF-8, so echoing them in a 422 (or storing them) failed with a 500 that also broke the
keep-alive connection. :class:`StrictJSONMiddleware` answers such bodies with a 422 naming the
field before any route runs; NUL characters are refused the same way (PostgreSQL cannot store
them). :func:`validation_error` is the one way routes and handlers build a 422, always in
FastAPI's documented ``HTTPValidationError`` shape and always serialisable.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Sequence
from typing import Any

from fastapi import Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

# Anything that may parse to a non-finite number or an unusable character. Only bodies that
# contain one of these are parsed a second time (most requests never are).
_SUSPECT = re.compile(
    rb"NaN|Infinity|[0-9.][eE][+-]?[0-9]{3}|\\[uU](?:[dD][89a-fA-F]|0000)|\xed[\xa0-\xbf]|\x00"
)
_BAD_CHARS = re.compile("[\ud800-\udfff\x00]")
_METHODS = frozenset({"POST", "PUT", "PATCH"})


class _Constant:
    """``NaN`` / ``Infinity`` / ``-Infinity`` as the parser met them."""

    def __init__(self, text: str) -> None:
        self.text = text


def _problems(value: Any, loc: tuple[str | int, ...]) -> Iterator[dict[str, Any]]:
    if isinstance(value, _Constant) or (isinstance(value, float) and not math.isfinite(value)):
        text = value.text if isinstance(value, _Constant) else repr(value)
        yield {"type": "finite_number", "loc": list(loc),
               "msg": f"Input should be a finite number (got {text})"}  # fmt: skip
    elif isinstance(value, str):
        if _BAD_CHARS.search(value):
            yield _bad_string(loc)
    elif isinstance(value, dict):
        for k, v in value.items():
            if _BAD_CHARS.search(k):
                yield _bad_string(loc, key=True)
            else:
                yield from _problems(v, (*loc, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _problems(v, (*loc, i))


def _bad_string(loc: tuple[str | int, ...], key: bool = False) -> dict[str, Any]:
    what = "key" if key else "string"
    return {"type": "string_unicode", "loc": list(loc),
            "msg": f"Invalid {what}: a lone surrogate or NUL character is not valid text"}  # fmt: skip


def body_problems(body: bytes) -> list[dict[str, Any]]:
    """The 422 error entries of a JSON body (empty when the body is fine or not JSON at all:
    invalid JSON is left to FastAPI's own ``json_invalid`` answer)."""
    if not _SUSPECT.search(body):
        return []
    try:
        parsed = json.loads(body, parse_constant=_Constant)
    except (ValueError, RecursionError):
        return []
    return list(_problems(parsed, ("body",)))[:20]


class StrictJSONMiddleware:
    """Pure ASGI middleware: JSON bodies with non-finite numbers or unusable characters get a
    422 naming the field; NUL in the path gets a 404. The body is read whole (the body limit
    middleware outside bounds it) and replayed to the app unchanged."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if "\x00" in scope.get("path", ""):
            await _send_json(send, 404, {"detail": "Not Found"})
            return
        if scope.get("method") not in _METHODS or not _is_json(scope):
            await self.app(scope, receive, send)
            return
        chunks = []
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client left
                await self.app(scope, _replay([message]), send)
                return
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        problems = body_problems(body)
        if problems:
            await _send_json(send, 422, {"detail": problems})
            return
        await self.app(scope, _replay([{"type": "http.request", "body": body}], receive), send)


def _is_json(scope: dict) -> bool:
    for name, value in scope.get("headers", ()):
        if name == b"content-type":
            return b"json" in value.lower()
    return False


def _replay(messages: list[dict], then: Any = None) -> Any:
    pending = list(messages)

    async def receive() -> dict:
        if pending:
            return pending.pop(0)
        if then is not None:
            return await then()  # after the body: wait for the disconnect like Starlette does
        return {"type": "http.disconnect"}

    return receive


async def _send_json(send: Any, status: int, content: Any) -> None:
    body = json.dumps(content).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def validation_error(
    loc: Sequence[str | int], msg: str, input: Any = None
) -> RequestValidationError:
    """A 422 in the ``HTTPValidationError`` shape, for checks a route makes itself."""
    error: dict[str, Any] = {"type": "value_error", "loc": tuple(loc), "msg": msg}
    if input is not None:
        error["input"] = input
    return RequestValidationError([error])


def _safe(value: Any) -> Any:
    """``value`` made JSON-safe: non-finite floats become null, unusable characters U+FFFD."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        return _BAD_CHARS.sub("\ufffd", value)
    if isinstance(value, dict):
        return {_safe(k): _safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_safe(v) for v in value]
    return value


async def validation_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's 422 answer, but one that cannot fail to serialise what it echoes."""
    assert isinstance(exc, RequestValidationError)
    errors = _safe(
        jsonable_encoder(
            exc.errors(), custom_encoder={bytes: lambda b: b.decode("utf-8", "replace")}
        )
    )
    return JSONResponse({"detail": errors}, status_code=422)


__all__ = [
    "StrictJSONMiddleware",
    "body_problems",
    "validation_error",
    "validation_error_handler",
]
