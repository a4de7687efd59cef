"""How a graph's answer (its result, each event it emits) becomes JSON text, in the worker.

Encoded once, here: the server, the store and every reader pass these bytes on as they are.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson

from .jobs import JSON_INTEGERS

#: The integers a job store keeps: JSON has no limit, but the stores' encoder (orjson) holds
#: signed and unsigned 64-bit ones (the same rule as for a job's input).
MIN_INT, MAX_INT = JSON_INTEGERS


class ResultNotSerializable(TypeError):
    """The graph returned something that has no JSON form."""


def encode_result(value: Any) -> bytes:
    """The graph's return value as JSON text, encoded once, here: the server, the store and
    every reader pass these bytes on as they are. Raises ResultNotSerializable saying why.

    orjson encodes what it can natively (dataclasses and subclasses of the JSON types
    included; pydantic models through ``model_dump``); what it refuses goes through
    :func:`to_json`, which converts non-string keys or names what has no JSON form.
    """
    try:
        return orjson.dumps(value, default=_model_dump, option=orjson.OPT_PASSTHROUGH_DATETIME)
    except orjson.JSONEncodeError:
        pass  # out of the except block: to_json's error is not chained to orjson's
    return orjson.dumps(to_json(value))


def _model_dump(value: Any) -> Any:
    model_dump = getattr(value, "model_dump", None)
    if callable(model_dump) and not isinstance(value, type):
        return model_dump(mode="json")
    raise TypeError(type(value).__name__)


def to_json(value: Any) -> Any:
    """Convert a graph's return value to JSON-compatible data, or raise ResultNotSerializable.

    Refused besides what has no JSON form: what the job stores cannot keep, so the job
    fails saying why rather than its result failing to be written (integers outside the
    64 bits (signed or not), strings or keys holding a lone surrogate).
    """
    if value is None or isinstance(value, bool | float):
        return value
    if isinstance(value, str):
        return _checked_text(value, "string")
    if isinstance(value, int):
        if not MIN_INT <= value <= MAX_INT:
            raise ResultNotSerializable(f"integer {value} is past the 64 bits a job store keeps")
        return value
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if isinstance(key, str):
                key = _checked_text(key, "dict key")
            elif isinstance(key, int | float | bool) or key is None:
                key = str(key)
            else:
                raise ResultNotSerializable(f"dict key of type {type(key).__name__}")
            out[key] = to_json(item)
        return out
    if isinstance(value, list | tuple):
        return [to_json(item) for item in value]
    model_dump = getattr(value, "model_dump", None)
    if callable(model_dump) and not isinstance(value, type):
        return to_json(model_dump(mode="json"))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    raise ResultNotSerializable(f"value of type {type(value).__name__} has no JSON form")


def _checked_text(text: str, what: str) -> str:
    """``text``, if UTF-8 (so JSON) can encode it: a lone surrogate cannot be."""
    if not text.isascii():
        try:
            text.encode()
        except UnicodeEncodeError as exc:
            raise ResultNotSerializable(
                f"{what} {text[:40]!r} holds a lone surrogate at index {exc.start},"
                " which JSON text cannot encode"
            ) from None
    return text


class ResultTooLarge(ValueError):
    """The graph's result is larger than ``max_result_bytes`` as JSON."""


def bounded(result: bytes, limit: int) -> bytes:
    """``result`` if it fits ``limit`` bytes (``max_result_bytes``; 0: any): refused here,
    before it crosses to the server and into the store."""
    if limit and len(result) > limit:
        raise ResultTooLarge(
            f"the result is {len(result):,} bytes as JSON, more than max_result_bytes ({limit:,})"
        )
    return result
