"""Build hook for the optional C accelerator; all metadata lives in pyproject.toml.

`optional=True`: when no C compiler is available the build skips the extension and resetlens
uses its pure Python + numpy record walk (same results, slower).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "resetlens.capture._cwalk",
            ["resetlens/capture/_cwalk.c"],
            optional=True,
            extra_compile_args=["-O2"],
        )
    ]
)
