"""glibc allocator settings for a training process: keep freed memory for the next step.

A training step allocates and frees the same gigabytes of activations every step. glibc
serves each block above its mmap threshold (128 kB, rising to at most 32 MB as large
blocks are freed; most full-resolution activations are larger) with a fresh ``mmap`` and
unmaps it when freed, and gives freed memory at the top of its heap back to the kernel,
which then zero-fills every page again on first touch: 9-20 % of a 2-core machine's time
went to the kernel. With ``mmap`` off for large blocks and trimming off, freed
activations stay in the heap for the next step; the process's resident memory then stays
at its peak, which a training run reaches in its first step anyway.

``dna-depth`` applies this to its own process (:func:`dna_depth_core.cli.main`), and so does
``finetune-bag``. The depth node does not: measured side by side over DDS
(``benchmarks/node_latency.py``), it made the node's own work per frame no faster at
1280x720 and about 30 % slower at 1920x1080. For any other program (e.g. a script that
uses :class:`~dna_depth_core.training.Trainer`), call :func:`keep_freed_memory_mapped`
first, or start it with the environment variables
``MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=1099511627776`` (trim only above 1 TiB).
"""

from __future__ import annotations

import ctypes
import ctypes.util

M_TRIM_THRESHOLD = -1
"""``mallopt`` parameter (``<malloc.h>``): free memory at the heap's top kept before trimming; -1 never trims."""
M_MMAP_MAX = -4
"""``mallopt`` parameter (``<malloc.h>``): most blocks served by ``mmap`` at once; 0 serves all from the heap."""


def keep_freed_memory_mapped() -> bool:
    """Tell glibc's ``malloc`` to serve large blocks from its heap and never trim it.

    Affects allocations made after the call, in this process and in processes it forks
    (data-loader workers). Safe to call more than once.

    Returns:
        ``True`` if applied; ``False`` where the C library is not glibc (musl, macOS,
        Windows), which is then left as it is.
    """
    name = ctypes.util.find_library("c")
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError, TypeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, -1))
