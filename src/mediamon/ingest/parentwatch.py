"""Worker processes that die with their parent.

An extraction worker forked by an ingest holds copies of the parent's sockets and its
PostgreSQL connection. If the parent is killed with SIGKILL (an OOM kill, an Airflow
task timeout, kill -9), nothing tells the workers: they would be reparented to PID 1
and live on, each holding its share of memory. On Linux the kernel sends them SIGKILL
when the parent dies (``prctl(PR_SET_PDEATHSIG)``); elsewhere a thread checks every
second whether the parent is still there.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import signal
import sys
import threading
import time

logger = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
WATCH_INTERVAL_S = 1.0


def die_with_parent(parent_pid: int) -> None:
    """Make this process end when ``parent_pid`` (the process that forked it) ends.

    Call it first thing in a child process (a process pool's initializer).
    """
    if sys.platform.startswith("linux") and _set_parent_death_signal(signal.SIGKILL):
        # The parent may have died between the fork and the prctl: then the signal
        # will never come, and this process already belongs to another parent.
        if os.getppid() != parent_pid:
            os._exit(1)
        return
    watcher = threading.Thread(target=_watch, args=(parent_pid,), daemon=True)
    watcher.start()


def _set_parent_death_signal(signum: int) -> bool:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return int(libc.prctl(PR_SET_PDEATHSIG, signum, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        logger.debug("prctl(PR_SET_PDEATHSIG) unavailable; watching the parent instead")
        return False


def _watch(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(WATCH_INTERVAL_S)
    os._exit(1)
