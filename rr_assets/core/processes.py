"""Processes that die with the process that started them, even under `kill -9` (Linux
PR_SET_PDEATHSIG: the kernel sends SIGKILL when the parent's starting thread ends)."""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import Callable

_PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int) -> None:
    """Have the kernel kill this process when its parent ends; exit at once if the parent (pid
    `parent`, the process that started this one) is already gone. Does nothing off Linux."""
    if not sys.platform.startswith("linux"):
        return
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before the line above
        os._exit(1)


def dies_with_this_process() -> Callable[[], None] | None:
    """A subprocess preexec function: the child dies with this process. None off Linux."""
    if not sys.platform.startswith("linux"):
        return None
    parent = os.getpid()
    return lambda: die_with_parent(parent)
