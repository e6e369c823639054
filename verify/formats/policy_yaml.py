"""A policy file's YAML, read strictly: the document, the line of every key, and readers of its shapes.

YAML 1.2's booleans only (``yes`` and ``on`` are errors, not booleans), no merge keys, no key twice, no
value PyYAML cannot convert escaping as a crash (found by fuzz/fuzz_policy.py); every error is a
:class:`PolicyError` that names the file, the line and the key. What the keys mean is
:mod:`verify.policy_file`'s.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from verify.errors import PolicyError

__all__ = ["YamlDoc", "any_mapping", "mapping", "string", "strings"]


@functools.cache
def _loader_class() -> Any:
    """PyYAML's SafeLoader, except that a scalar it cannot convert is a YAML error naming its line.

    SafeLoader turns ``2026-02-30`` into a ``ValueError`` from ``datetime``, an integer of 5,000
    digits into a ``ValueError`` from ``int``, ``!!timestamp x`` into an ``AttributeError`` and
    ``!!bool x`` into a ``KeyError``: exceptions with no line, which would escape as a crash
    instead of a policy error (found by fuzz/fuzz_policy.py).
    """
    import yaml

    class Loader(yaml.SafeLoader):
        def construct_yaml_bool(self, node: Any) -> bool:
            # YAML 1.1 also reads yes/no/on/off as booleans, YAML 1.2 as strings: which one the author meant
            # is not for a verifier to guess, so only true and false are booleans
            if node.value not in _BOOLEANS:
                said = (f"{node.value!r} is a boolean only in YAML 1.1; write true or false (or quote it for a "
                        "string)" if node.value.lower() in ("yes", "no", "on", "off", "y", "n")
                        else f"cannot read {node.value!r} as bool")
                raise yaml.constructor.ConstructorError(None, None, said, node.start_mark)
            return bool(_BOOLEANS[node.value])

        def construct_mapping(self, node: Any, deep: bool = False) -> Any:
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    raise yaml.constructor.ConstructorError(
                        None, None, "merge keys (<<) are YAML 1.1 and may hide a key written twice; write the keys "
                                    "out (an alias of a whole value is fine)", key_node.start_mark)
            return super().construct_mapping(node, deep=deep)

        def construct_object(self, node: Any, deep: bool = False) -> Any:
            try:
                return super().construct_object(node, deep=deep)
            except (yaml.YAMLError, RecursionError):
                raise
            except Exception as e:  # ValueError, OverflowError, KeyError (!!bool x), AttributeError (!!timestamp x)
                shown = node.value if isinstance(node, yaml.ScalarNode) else node.tag
                raise yaml.constructor.ConstructorError(
                    None, None, f"cannot read {str(shown)[:40]!r} as {node.tag.rsplit(':', 1)[-1]}", node.start_mark,
                ) from e

    Loader.add_constructor("tag:yaml.org,2002:bool", Loader.construct_yaml_bool)
    return Loader


_BOOLEANS = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}


class YamlDoc:
    """The parsed YAML plus the line of every key path, for error messages."""

    def __init__(self, path: Path, text: str) -> None:
        import yaml

        self.path = path
        self.key_files: list[str] = []
        """Every key file the policy reads (pinned, revoked, a KMS key's PEM), as read."""
        self.lines: dict[tuple[str, ...], int] = {}
        self._walked: set[int] = set()
        try:
            loader = _loader_class()(text)
            try:
                node = loader.get_single_node()
                if node is None:
                    raise PolicyError(f"policy {path} is empty; it must name identities and provenance rules")
                self._walk(node, ())
                self.data = loader.construct_document(node)
            finally:
                loader.dispose()
        except RecursionError as e:  # PyYAML composes recursively: "[[[[..." must be an error, not a crash
            raise PolicyError(f"policy {path} nests YAML too deeply to be a policy") from e
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f":{mark.line + 1}" if mark is not None else ""
            problem = getattr(e, "problem", None) or str(e).splitlines()[0]
            raise PolicyError(f"policy {path}{where} is not valid YAML: {problem}") from e

    def _walk(self, node: Any, path: tuple[str, ...]) -> None:
        import yaml

        self.lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.CollectionNode):
            # an alias is walked once, where its anchor is: it may contain itself, or be used 9**9 times
            if id(node) in self._walked:
                return
            self._walked.add(id(node))
        if isinstance(node, yaml.MappingNode):
            seen: set[str] = set()
            for key_node, value_node in node.value:
                key = str(key_node.value)
                if key in seen:
                    raise PolicyError(f"{self.path}:{key_node.start_mark.line + 1}: key {'.'.join((*path, key))!r} "
                                      "appears twice")
                seen.add(key)
                self.lines[(*path, key)] = key_node.start_mark.line + 1
                self._walk(value_node, (*path, key))
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                self._walk(item, (*path, str(i)))

    def error(self, path: tuple[str, ...], message: str) -> PolicyError:
        # a missing key has no line: use its nearest ancestor's, but still name the key itself
        present = path
        line = self.lines.get(present)
        while line is None and present:
            present = present[:-1]
            line = self.lines.get(present)
        where = f"{self.path}:{line}" if line else str(self.path)
        key = ".".join(path) or "(top level)"
        return PolicyError(f"{where}: {key}: {message}")


def mapping(doc: YamlDoc, value: Any, path: tuple[str, ...], allowed: set[str],
             modifiers: frozenset[str] = frozenset()) -> dict[str, Any]:
    """``value`` as a mapping whose keys are among ``allowed`` (what it is) and ``modifiers`` (what narrows it)."""
    if not isinstance(value, dict):
        raise doc.error(path, f"must be a mapping, not {type(value).__name__}")
    for key in value:
        if key not in allowed and key not in modifiers:
            also = f", optionally with {sorted(modifiers)}" if modifiers else ""
            raise doc.error((*path, str(key)), f"unknown key; expected one of {sorted(allowed)}{also}")
    return value


def any_mapping(doc: YamlDoc, value: Any, path: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise doc.error(path, f"must be a mapping, not {type(value).__name__}")
    return value


def strings(doc: YamlDoc, value: Any, path: tuple[str, ...], *, nonempty: bool = True) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise doc.error(path, "must be a list of non-empty strings")
    if nonempty and not value:
        raise doc.error(path, "must not be empty (an empty rule would pass everything)")
    return tuple(value)


def string(doc: YamlDoc, value: Any, path: tuple[str, ...]) -> str:
    if not isinstance(value, str) or not value:
        raise doc.error(path, "must be a non-empty string")
    return value
