"""The map in docs/architecture.md stays true: the import rules, the size of modules, the size of functions.

Imports are read from the source (every ``import`` and ``from ... import`` anywhere in a module: at the
top, inside a function, under ``if TYPE_CHECKING``), so that a circle hidden behind a late import is still
a circle. The rules:

1. no import circle among attest/ and verify/ modules;
2. verify/ never imports attest/ (the trust core does no I/O of the edge's);
3. attest/ uses verify/'s public modules and names only (no ``_private`` module or name);
4. each verify/ module imports only its own layer or the layers below it (:data:`LAYERS`), and a new
   module must be placed in a layer here and in docs/architecture.md;
5. inside verify/, a verify module imported inside a function says why (``# lazy: ...``, for start-up);
6. no verify/ module over :data:`MAX_MODULE_LINES` lines, no function over a cyclomatic complexity of
   :data:`MAX_COMPLEXITY` (radon's measure).

Each rule is also run against a small tree made to break it, so that a rule that could never fail fails
this test instead.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import ROOT, missing_tool

MAX_MODULE_LINES = 600
MAX_COMPLEXITY = 15

#: verify/'s layers, lowest first; a module may import its own layer and those before it.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("core", ("verify.errors", "verify.limits", "verify.budget", "verify.files", "verify.digests", "verify.sslib")),
    ("formats", ("verify.formats",)),
    ("trust", ("verify.trust",)),
    ("sigstore", ("verify.sigstore",)),
    ("decisions", ("verify.buildtypes", "verify.signers", "verify.matching", "verify.policy", "verify.policy_file",
                   "verify.rules", "verify.stages", "verify.verifier", "verify.gate", "verify.release_gate",
                   "verify.layout",
                   "verify.lockfile_check", "verify.request")),
    ("rooms", ("verify.audit", "verify.path")),
    ("surface", ("verify",)),
)


@dataclass(frozen=True)
class Import:
    source: str
    """The importing module."""
    target: str
    """The module imported (the longest name that is a module of the tree)."""
    names: tuple[str, ...]
    line: int
    in_function: bool
    text: str


def modules(root: Path, packages: tuple[str, ...] = ("attest", "verify")) -> dict[str, Path]:
    found = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def imports(root: Path, known: Mapping[str, Path]) -> Iterator[Import]:
    """Every import of a module of ``known`` by a module of ``known``, wherever it is written."""
    for name, path in known.items():
        text = path.read_text(encoding="utf-8")
        lines = text.splitlines()
        tree = ast.parse(text)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        functions = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
        inside = {id(n) for f in functions for n in ast.walk(f)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                pairs = [(alias.name, ()) for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[:len(package.split(".")) - node.level + 1]
                    base = ".".join([*up, base] if base else up)
                pairs = [(f"{base}.{a.name}", (a.name,)) if f"{base}.{a.name}" in known else (base, (a.name,))
                         for a in node.names]
            else:
                continue
            for target, names in pairs:
                while target and target not in known:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    yield Import(source=name, target=target, names=names, line=node.lineno,
                                 in_function=id(node) in inside, text=lines[node.lineno - 1])


def circles(found: list[Import]) -> list[list[str]]:
    """The import circles (strongly connected components of more than one module), each sorted."""
    graph: dict[str, set[str]] = {}
    for i in found:
        graph.setdefault(i.source, set()).add(i.target)
        graph.setdefault(i.target, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    result: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's algorithm
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                result.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return result


def layer_of(module: str) -> int | None:
    best: tuple[int, int] | None = None  # (length of the matching prefix, layer)
    for number, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            inside = module == prefix or (prefix != "verify" and module.startswith(prefix + "."))
            if inside and (best is None or len(prefix) > best[0]):
                best = (len(prefix), number)
    return None if best is None else best[1]


def broken_rules(root: Path) -> list[str]:
    """Every break of rules 1 to 5 in the tree at ``root``, one line each."""
    known = modules(root)
    found = list(imports(root, known))
    problems = [f"import circle: {' -> '.join(c)}" for c in circles(found)]
    problems += [f"{name} is in no layer of tests/test_architecture.py LAYERS" for name in known
                 if name.startswith("verify") and layer_of(name) is None]
    for i in found:
        where = f"{i.source} line {i.line}"
        if i.source.startswith("verify") and i.target.startswith("attest"):
            problems.append(f"{where}: verify/ imports {i.target}")
        if i.source.startswith("attest") and i.target.startswith("verify"):
            parts = dict.fromkeys((*i.target.split("."), *i.names))
            private = [p for p in parts if p.startswith("_")]
            if private:
                problems.append(f"{where}: attest/ uses the private {'.'.join(private)} of {i.target}")
        if i.source.startswith("verify") and i.target.startswith("verify"):
            mine, theirs = layer_of(i.source), layer_of(i.target)
            if mine is not None and theirs is not None and theirs > mine:
                problems.append(f"{where}: layer {LAYERS[mine][0]} imports {i.target} of layer {LAYERS[theirs][0]}")
            if i.in_function and "# lazy" not in i.text:
                problems.append(f"{where}: imports {i.target} inside a function without saying why (# lazy: ...)")
    return sorted(set(problems))


def test_the_import_rules_hold() -> None:
    assert broken_rules(ROOT) == []


def _tree(tmp_path: Path, files: Mapping[str, str]) -> Path:
    for name, text in {"attest/__init__.py": "", "verify/__init__.py": "", **files}.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


@pytest.mark.parametrize(("files", "expected"), [
    ({"verify/errors.py": "def f():\n    from verify import limits  # lazy: start-up\n",
      "verify/limits.py": "from verify.errors import f\n"},
     "import circle: verify.errors -> verify.limits"),
    ({"verify/gate.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from verify.signers import x\n",
      "verify/signers.py": "from verify.gate import y\n"},
     "import circle: verify.gate -> verify.signers"),
    ({"verify/gate.py": "from attest.errors import AttestError\n", "attest/errors.py": ""},
     "verify.gate line 1: verify/ imports attest.errors"),
    ({"attest/cli.py": "from verify.formats import _json\n", "verify/formats/__init__.py": "",
      "verify/formats/_json.py": ""},
     "attest.cli line 1: attest/ uses the private _json of verify.formats._json"),
    ({"attest/cli.py": "from verify.gate import _narrow\n", "verify/gate.py": ""},
     "attest.cli line 1: attest/ uses the private _narrow of verify.gate"),
    ({"verify/formats/__init__.py": "", "verify/formats/bundle.py": "from verify.trust import Identity\n",
      "verify/trust.py": ""},
     "verify.formats.bundle line 1: layer formats imports verify.trust of layer trust"),
    ({"verify/newthing.py": "from verify.errors import E\n", "verify/errors.py": ""},
     "verify.newthing is in no layer of tests/test_architecture.py LAYERS"),
    ({"verify/gate.py": "def f():\n    from verify.errors import E\n", "verify/errors.py": ""},
     "verify.gate line 2: imports verify.errors inside a function without saying why (# lazy: ...)"),
], ids=["circle", "circle-behind-type-checking", "verify-imports-attest", "private-module", "private-name",
        "layer-upwards", "no-layer", "unexplained-late-import"])
def test_each_import_rule_fails_on_a_tree_that_breaks_it(tmp_path: Path, files: Mapping[str, str],
                                                         expected: str) -> None:
    assert expected in broken_rules(_tree(tmp_path, files))


def test_no_verify_module_is_too_long_to_review() -> None:
    long = {name: n for name, path in modules(ROOT, ("verify",)).items()
            if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES}
    assert long == {}


def complex_functions(paths: list[Path]) -> list[str]:
    try:
        from radon.complexity import cc_visit
    except ImportError:
        missing_tool("radon is not installed (pip install -e '.[test]')")
    found = []
    for path in paths:
        for block in cc_visit(path.read_text(encoding="utf-8")):
            if block.complexity > MAX_COMPLEXITY:
                shown = Path(*path.parts[path.parts.index("verify"):])
                found.append(f"{shown}:{block.lineno} {block.name} ({block.complexity})")
    return found


def test_no_function_in_verify_is_too_complex_to_review() -> None:
    assert complex_functions(sorted((ROOT / "verify").rglob("*.py"))) == []


def test_the_complexity_rule_fails_on_a_complex_function(tmp_path: Path) -> None:
    body = "".join(f"    if x == {i}:\n        return {i}\n" for i in range(MAX_COMPLEXITY))
    path = _tree(tmp_path, {"verify/gate.py": f"def decide(x):\n{body}    return -1\n"}) / "verify" / "gate.py"
    assert complex_functions([path]) == [f"verify/gate.py:1 decide ({MAX_COMPLEXITY + 1})"]
