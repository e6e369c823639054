"""Run a guide: every ```sh block of a Markdown page, in order, in one bash, in a fresh folder.

    python demo/guide.py docs/path.md [--out DIR]

``make demo-path`` runs docs/path.md this way (into ./demo-out-path), ``make demo-audit`` docs/audit.md, and so do
their tests: the guide's commands are the demo, and a command in the guide that stops working fails both. The
repository is on the guide's PYTHONPATH, for its helpers (``python -m demo.history``). Each block is echoed
before it runs; the first command that fails stops the run (``set -euo pipefail``), as in a pipeline.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

_BLOCK = re.compile(r"^```sh\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def blocks(page: Path) -> list[str]:
    """The page's ```sh blocks, in order."""
    return [match.group(1) for match in _BLOCK.finditer(page.read_text(encoding="utf-8"))]


def script(page: Path) -> str:
    """One bash script running each block after echoing it."""
    parts = ["set -euo pipefail", "unset ATTEST_KEY_PASSWORD SOURCE_DATE_EPOCH",
             "export GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1"]
    for n, block in enumerate(blocks(page), 1):
        shown = "".join(f"$ {line}\n" for line in block.splitlines())
        parts.append(f"printf '\\n\\033[1m== %s\\033[0m\\n%s' {_quote(f'step {n}')} {_quote(shown)}")
        parts.append(block)
    return "\n".join(parts) + "\n"


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\"'\"'") + "'"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("page", type=Path)
    parser.add_argument("--out", type=Path, help="the folder to run in (made afresh; default demo-out-<page>)")
    args = parser.parse_args()
    out = args.out or Path(f"demo-out-{args.page.stem}")
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("CODEBUILD_", "GITHUB_", "GITLAB_", "CI_", "ATTEST_"))}
    # the attest installed beside this Python, unless the PATH already has its folder: then what comes before it
    # was put there on purpose (the tests' own attest, say)
    here = str(Path(sys.executable).parent)
    if here not in env.get("PATH", "").split(os.pathsep):
        env["PATH"] = f"{here}{os.pathsep}{env.get('PATH', '')}"
    # the repository on the path: a guide may run its helpers (python -m demo.history)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(__file__).resolve().parent.parent),
                                                      env.get("PYTHONPATH")]))
    return subprocess.run(["bash", "-c", script(args.page)], cwd=out, env=env, check=False).returncode


if __name__ == "__main__":
    raise SystemExit(main())
