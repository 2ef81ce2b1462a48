"""What a worker process does first: tie its life to its driver's, then ignore Ctrl-C. Standard library only.

A spawned worker imports this module (the pool's initializer) before anything heavy, so that it is tied to the driver
within a fraction of a second of its start, not after the seconds that importing torch takes: the kernel kills it
when the driver dies (``prctl(PR_SET_PDEATHSIG)``, Linux), and a thread watches the parent everywhere (it also
covers a driver that died before this ran).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

PR_SET_PDEATHSIG = 1  # linux/prctl.h


def init_worker(threads: int, parent: int) -> None:
    die_with_parent(parent)
    # Ctrl-C goes to the driver, which ends the pool; workers must not print their own tracebacks
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    import multiprocessing as mp

    import torch

    torch.set_num_threads(threads)
    # several GPUs: one per worker, so that --device auto/cuda spreads the pool over them instead of crowding cuda:0.
    # A pool numbers its processes 1, 2, ... (``_identity``, which multiprocessing also names them by). Asking whether
    # and how many GPUs there are creates no CUDA context; ``set_device`` does, in this worker only.
    n_gpu = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if n_gpu > 1:
        ident = getattr(mp.current_process(), "_identity", ()) or (1,)
        torch.cuda.set_device((ident[0] - 1) % n_gpu)


def die_with_parent(parent: int) -> None:
    """End this process when process ``parent`` (its driver) dies."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(0.5)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, name="nasforge-parent-watch", daemon=True).start()
