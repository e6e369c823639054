"""Reading back the JSON form of an audit report's records (:mod:`verify.audit.report`'s ``from_dict``): every key
and every value checked, and any slip one sentence, a ValueError (the text comes from a cache others may have
written).

A page of an audit's history reads back every artefact's history, some 70 values each: a value of the type
expected is let through at once, and the sentence saying what is wrong is made only when something is."""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

JSON_NAMES: Mapping[type, str] = {str: "a string", bool: "a boolean", int: "an integer", list: "a list",
                                   dict: "an object", type(None): "null"}


class reading:  # (lower case: used as the function it was, ``with reading(what):``)
    """A slip the checks did not foresee is still the one error a reader of a cache expects."""

    __slots__ = ("what",)

    def __init__(self, what: str) -> None:
        self.what = what

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        if error is not None and isinstance(error, KeyError | TypeError | AttributeError):
            raise ValueError(f"{self.what} cannot be read: {type(error).__name__}: {error}") from error


def json_name(value: object) -> str:
    return next((name for t, name in JSON_NAMES.items() if type(value) is t), type(value).__name__)


def an_object(data: object, keys: Collection[str], what: str) -> dict[str, Any]:
    """``data`` as an object with exactly ``keys``: a key more or less is not a form ``to_dict`` wrote."""
    if type(data) is dict and data.keys() == keys:  # (``keys`` a set: the usual case, at once)
        return data
    if not isinstance(data, dict):
        raise ValueError(f"{what} is {json_name(data)}, not an object")
    if missing := sorted(set(keys) - data.keys()):
        raise ValueError(f"{what} has no {', '.join(missing)}")
    if unknown := sorted(map(repr, data.keys() - set(keys))):
        raise ValueError(f"{what} has the unknown key(s) {', '.join(unknown)}")
    return data


def checked(value: Any, what: str, *types: type | None) -> Any:
    """``value`` if it is of one of ``types`` (None: null); a boolean is no integer here, as in JSON."""
    if type(value) in types or (value is None and None in types):
        return value
    wanted = tuple(type(None) if t is None else t for t in types)
    if not isinstance(value, wanted) or isinstance(value, bool):
        raise ValueError(f"{what} is {json_name(value)}, not {' or '.join(JSON_NAMES[t] for t in wanted)}")
    return value


def a_value(data: dict[str, Any], key: str, what: str, *types: type | None) -> Any:
    value = data[key]
    if type(value) in types or (value is None and None in types):
        return value
    return checked(value, f"{what}: {key}", *types)


def strings(data: dict[str, Any], key: str, what: str) -> tuple[str, ...]:
    return tuple(checked(item, f"{what}: an item of {key}", str) for item in a_value(data, key, what, list))


def lockfiles(data: dict[str, Any], what: str) -> tuple[tuple[str, tuple[tuple[str, str], ...]], ...]:
    """``{name: {algorithm: hex}}`` back to (name, ((algorithm, hex), ...)), keeping the order of both."""
    lockfiles = []
    for name, digests in a_value(data, "lockfiles", what, dict).items():
        where = f"{what}: lockfile {checked(name, f'{what}: a lockfile name', str)!r}"
        lockfiles.append((name, tuple((checked(alg, f"{where}: an algorithm", str), checked(hex_, where, str))
                                      for alg, hex_ in checked(digests, where, dict).items())))
    return tuple(lockfiles)


def choice(data: dict[str, Any], key: str, what: str, choices: tuple[str, ...]) -> str:
    given: str = a_value(data, key, what, str)
    if given not in choices:
        raise ValueError(f"{what}: {key} is {given!r}, not one of {', '.join(choices)}")
    return given


#: :func:`verify.audit.report.iso_time`'s spelling, and only it (a valid date and time is then left to datetime).
_ISO_UTC = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z")


def a_time(data: dict[str, Any], key: str, what: str) -> datetime | None:
    """A time as :func:`iso_time` writes it, and only so: any other spelling would not read back the same."""
    text = a_value(data, key, what, str, None)
    if text is None:
        return None
    if _ISO_UTC.fullmatch(text):
        try:
            return datetime.fromisoformat(text[:19]).replace(tzinfo=UTC)
        except ValueError:
            pass  # (a month 13, a 30th of February)
    raise ValueError(f"{what}: {key} {text!r} is not a UTC time like 2024-05-01T10:00:00Z")
