"""File modes that bind root too: tests of "a file no one may read" and "a read-only folder" run as root in CI.

Root reads and writes whatever a file's mode says because it holds the capabilities ``CAP_DAC_OVERRIDE``
and ``CAP_DAC_READ_SEARCH``. :func:`file_modes_enforced` takes both out of the calling thread's effective
set (they stay permitted) for the ``with`` block and puts them back after it, so that a mode-000 file or a
mode-555 folder refuses this process as it would refuse any user. Capabilities are per thread on Linux: the
block's own thread, and any process it forks, are bound; nothing else in the test run is.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from tests.conftest import missing_tool

_VERSION_3 = 0x20080522  # _LINUX_CAPABILITY_VERSION_3: two 32-bit words per set
_DAC = (1 << 1) | (1 << 2)  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH


class _Header(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _Data(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def _capset(libc: ctypes.CDLL, header: _Header, data: ctypes.Array[_Data]) -> None:
    if libc.capset(ctypes.byref(header), data) != 0:
        raise OSError(ctypes.get_errno(), "capset failed")


@contextmanager
def file_modes_enforced() -> Iterator[None]:
    """File modes bind this thread for the block, root or not; skips where that cannot be arranged."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        yield
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        header = _Header(_VERSION_3, 0)
        data = (_Data * 2)()
        if libc.capget(ctypes.byref(header), data) != 0:
            raise OSError(ctypes.get_errno(), "capget failed")
    except (OSError, AttributeError) as e:  # CI runs as root on Linux: there this is a failure, not a skip
        missing_tool(f"root reads and writes whatever a file's mode, and its capabilities cannot be read here: {e}")
    saved = data[0].effective
    data[0].effective = saved & ~_DAC
    _capset(libc, header, data)
    try:
        yield
    finally:
        data[0].effective = saved
        _capset(libc, header, data)


_PR_SET_SECUREBITS = 28
_SECBIT_NOROOT = 1  # an exec by uid 0 is not given every capability


def _no_root_powers() -> None:  # runs in the child between fork and exec
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_SECUREBITS, _SECBIT_NOROOT, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_SECUREBITS) failed")


def bound_by_file_modes() -> Callable[[], None] | None:
    """A ``preexec_fn`` for :mod:`subprocess` under which the program it runs is bound by file modes, root
    or not: uid 0 keeps its uid (it owns the test's files) but the exec gives it no capability. None when
    this process is not root (nothing to take away)."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return None
    return _no_root_powers
