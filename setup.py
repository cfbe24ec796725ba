"""Build hook for the optional C accelerators; all metadata lives in pyproject.toml.

`optional=True`: when no C compiler is available the build skips an extension and resetlens uses its
pure Python twin (same results, slower): the record walk/decode (`_cwalk`), the Zeek TCP connection
engine (`_czeek`), the RST records' context walk (`_crecord`), the packet story of a reset (`_cstory`),
the JSON text of connection rows and ladders (`_jsonrows`).
"""

from pathlib import Path

from setuptools import Extension, setup

# (module, source, compiler flags)
ACCELERATORS = [
    # -O3: the frame loop is one inlined function; no FMA contraction: ts must round as numpy's does
    ("resetlens.capture._cwalk", "resetlens/capture/_cwalk.c", ["-O3", "-ffp-contract=off"]),
    ("resetlens.tcp._czeek", "resetlens/tcp/_czeek.c", ["-O2"]),
    ("resetlens.tcp._crecord", "resetlens/tcp/_crecord.c", ["-O2", "-ffp-contract=off"]),
    ("resetlens.blame._cstory", "resetlens/blame/_cstory.c", ["-O2", "-ffp-contract=off"]),
    ("resetlens.report._jsonrows", "resetlens/report/_jsonrows.c", ["-O2"]),
]

setup(
    ext_modules=[
        Extension(name, [source], optional=True, extra_compile_args=flags)
        for name, source, flags in ACCELERATORS
        if (Path(__file__).parent / source).exists()  # an accelerator being written is not built yet
    ]
)
