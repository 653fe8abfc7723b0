"""Few malloc arenas per process, so that memory one thread freed serves the next request.

glibc's ``malloc`` gives each thread an arena of its own (up to eight per
core), and memory freed in one arena is only reused by threads of that arena.
Big answers (a listing Radicale builds, a collection written out) take tens of
megabytes for a moment; with one arena per thread of the HTTP server, each
thread keeps the most it ever needed, so the process grows to about *threads*
times the largest answer even when only a few are built at once
(:mod:`dav_cms.web.heavy`). With :data:`ARENAS` arenas the freed memory is
shared, and the process's size follows the number of answers built at the
same time. Python allocates under its global lock, so threads hardly ever
wait for a shared arena.

Set before the server starts its threads (arenas are assigned on a thread's
first allocation). A ``MALLOC_ARENA_MAX`` in the environment is the
operator's choice and is left alone, as is any C library but glibc.
"""

from __future__ import annotations

import ctypes
import logging
import os
import platform

logger = logging.getLogger(__name__)

ARENAS = 2
M_ARENA_MAX = -8  # glibc's malloc.h


def limit_arenas(arenas: int = ARENAS) -> bool:
    """Cap this process's malloc arenas at ``arenas``; whether that was done."""
    if os.environ.get("MALLOC_ARENA_MAX") or platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    done = bool(mallopt(M_ARENA_MAX, arenas))
    if not done:
        logger.debug("mallopt(M_ARENA_MAX, %d) refused", arenas)
    return done
