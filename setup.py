"""Build hook for the optional C accelerators; all metadata lives in pyproject.toml.

`optional=True`: when no C compiler is available the build skips an extension and resetlens uses its
pure Python twin (same results, slower): the record walk/decode (`_cwalk`) and the Zeek TCP connection
engine (`_czeek`), the JSON text of connection rows (`_jsonrows`).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "resetlens.capture._cwalk",
            ["resetlens/capture/_cwalk.c"],
            optional=True,
            # -O3: the frame loop is one inlined function; no FMA contraction: ts must round as numpy's does
            extra_compile_args=["-O3", "-ffp-contract=off"],
        ),
        Extension(
            "resetlens.tcp._czeek",
            ["resetlens/tcp/_czeek.c"],
            optional=True,
            extra_compile_args=["-O2"],
        ),
        Extension(
            "resetlens.report._jsonrows",
            ["resetlens/report/_jsonrows.c"],
            optional=True,
            extra_compile_args=["-O2"],
        ),
    ]
)
