"""Reading back the JSON form of an audit report's records (:mod:`verify.audit.report`'s ``from_dict``): every key
and every value checked, and any slip one sentence, a ValueError (the text comes from a cache others may have
written)."""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

JSON_NAMES: Mapping[type, str] = {str: "a string", bool: "a boolean", int: "an integer", list: "a list",
                                   dict: "an object", type(None): "null"}


@contextmanager
def reading(what: str) -> Iterator[None]:
    """A slip the checks did not foresee is still the one error a reader of a cache expects."""
    try:
        yield
    except (KeyError, TypeError, AttributeError) as e:
        raise ValueError(f"{what} cannot be read: {type(e).__name__}: {e}") from e


def json_name(value: object) -> str:
    return next((name for t, name in JSON_NAMES.items() if type(value) is t), type(value).__name__)


def an_object(data: object, keys: Collection[str], what: str) -> dict[str, Any]:
    """``data`` as an object with exactly ``keys``: a key more or less is not a form ``to_dict`` wrote."""
    if not isinstance(data, dict):
        raise ValueError(f"{what} is {json_name(data)}, not an object")
    if missing := sorted(set(keys) - data.keys()):
        raise ValueError(f"{what} has no {', '.join(missing)}")
    if unknown := sorted(map(repr, data.keys() - set(keys))):
        raise ValueError(f"{what} has the unknown key(s) {', '.join(unknown)}")
    return data


def checked(value: Any, what: str, *types: type | None) -> Any:
    """``value`` if it is of one of ``types`` (None: null); a boolean is no integer here, as in JSON."""
    wanted = tuple(type(None) if t is None else t for t in types)
    if type(value) not in wanted and not (isinstance(value, wanted) and not isinstance(value, bool)):
        raise ValueError(f"{what} is {json_name(value)}, not {' or '.join(JSON_NAMES[t] for t in wanted)}")
    return value


def a_value(data: dict[str, Any], key: str, what: str, *types: type | None) -> Any:
    return checked(data[key], f"{what}: {key}", *types)


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


def a_time(data: dict[str, Any], key: str, what: str) -> datetime | None:
    """A time as :func:`iso_time` writes it, and only so: any other spelling would not read back the same."""
    text = a_value(data, key, what, str, None)
    if text is None:
        return None
    try:
        parsed = datetime.fromisoformat(text.removesuffix("Z")).replace(tzinfo=UTC) if text.endswith("Z") else None
    except ValueError:
        parsed = None
    if parsed is None or parsed.isoformat(timespec="seconds")[:19] + "Z" != text:  # (iso_time's spelling, only)
        raise ValueError(f"{what}: {key} {text!r} is not a UTC time like 2024-05-01T10:00:00Z")
    return parsed
