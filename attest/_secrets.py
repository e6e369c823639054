"""Keep attest's own secrets from the build command it runs (Linux).

``attest build -- CMD`` runs CMD without the signer's credentials in its environment
(:func:`attest.collect.command_environment`). That is not enough on Linux: CMD runs as the
same user as attest, and ``/proc/<attest's pid>/environ`` shows attest's *original*
environment block, the bytes the kernel copied onto its stack at exec, whatever
``os.environ``, ``putenv`` or ``unsetenv`` did since. A build script, or any dependency it
installs, could read ``ATTEST_KEY_PASSWORD`` or ``AWS_SECRET_ACCESS_KEY`` there and sign, or
call KMS, in attest's name. Reading attest's memory through ``/proc/<pid>/mem`` or ptrace
would do as well.

:func:`hide_from_children` closes both, before CMD starts:

1. it overwrites the value of each secret variable in that original block with NUL bytes, in
   place (the ``NAME=`` stays, the separators too, so the block keeps its shape). Attest
   keeps working: ``os.environ`` is a copy made at start-up, and each secret is set again
   with ``putenv`` first, so that C code calling ``getenv`` finds it in fresh memory;
2. it marks the process not dumpable (``prctl(PR_SET_DUMPABLE, 0)``): ``/proc/<pid>/environ``,
   ``/proc/<pid>/mem`` and ptrace then need root (CAP_SYS_PTRACE), not merely the same user.

Both are best effort: on another system, or without ``/proc`` or ``prctl``, nothing happens
and the build goes on (logged at debug level). Root can still read attest's memory; a
build that must not see the credentials at all should run as another user or in a container.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable

__all__ = ["hide_from_children"]

log = logging.getLogger(__name__)

PR_SET_DUMPABLE = 4  # <linux/prctl.h>

#: 1-based field numbers of the original environment block in /proc/PID/stat (proc(5)).
_ENV_START_FIELD, _ENV_END_FIELD = 50, 51


def hide_from_children(is_secret: Callable[[str], bool]) -> None:
    """Make the environment variables for which ``is_secret(name)`` holds unreadable to other processes."""
    if not sys.platform.startswith("linux"):
        return
    try:
        scrubbed = _scrub_original_environment(is_secret)
    except (OSError, ValueError, IndexError) as e:
        log.debug("could not clear secrets from the original environment block: %s", e)
    else:
        if scrubbed:
            log.debug("cleared %s from the original environment block", ", ".join(scrubbed))
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
    except (OSError, AttributeError) as e:
        log.debug("could not mark attest not dumpable: %s", e)


def _scrub_original_environment(is_secret: Callable[[str], bool]) -> list[str]:
    """Overwrite the values of secret variables in the block /proc/self/environ shows; their names."""
    import ctypes

    with open("/proc/self/stat", "rb") as f:
        stat = f.read()
    # pid (comm) state ...: comm may hold spaces and parentheses, so split after the last ')'
    fields = stat[stat.rindex(b")") + 2:].split()
    start, end = int(fields[_ENV_START_FIELD - 3]), int(fields[_ENV_END_FIELD - 3])
    with open("/proc/self/environ", "rb") as f:  # the kernel reads the block: it is mapped, and this long
        shown = f.read()
    if not start or end - start != len(shown) or ctypes.string_at(start, end - start) != shown:
        raise ValueError(f"the environment block at {start:#x}-{end:#x} is not what /proc/self/environ shows")
    scrubbed = []
    offset = 0
    for entry in shown.split(b"\0"):
        name, equals, value = entry.partition(b"=")
        text = os.fsdecode(name)
        if equals and value and is_secret(text):
            if text in os.environ:  # set it again in memory of its own, for C code calling getenv()
                os.putenv(text, os.environ[text])
            ctypes.memset(start + offset + len(name) + 1, 0, len(value))
            scrubbed.append(text)
        offset += len(entry) + 1
    return scrubbed
