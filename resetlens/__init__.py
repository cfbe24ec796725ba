"""resetlens: who sent that TCP reset, why, and what to fix."""

import os as _os

# numpy's bundled OpenBLAS starts a spinning thread per core at import; resetlens multiplies no matrices,
# and on a small machine that spinning takes the core the capture read-ahead thread needs.
_os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

__version__ = "0.1.0"
