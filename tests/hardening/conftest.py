"""Hypothesis keeps its caches (e.g. the Unicode character map) outside the work tree."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis.configuration import set_hypothesis_home_dir

set_hypothesis_home_dir(str(Path(tempfile.gettempdir()) / "attest-hardening-hypothesis"))
