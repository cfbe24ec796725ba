"""The analysis pauses the cyclic garbage collector and always restores the caller's setting."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest

from resetlens.bundle import bundle_from_args, load_bundle
from resetlens.errors import ResetlensError
from resetlens.pipeline import analyze, paused_gc
from tests.conftest import LAB_FIXTURES


@pytest.mark.parametrize("enabled", [True, False])
def test_gc_setting_restored_after_an_analysis(enabled: bool) -> None:
    was = gc.isenabled()
    try:
        (gc.enable if enabled else gc.disable)()
        with paused_gc():
            assert not gc.isenabled()
        a = analyze(load_bundle(LAB_FIXTURES / "no_listener"))
        assert a.resets
        assert gc.isenabled() is enabled
    finally:
        (gc.enable if was else gc.disable)()


def test_gc_setting_restored_when_the_input_is_bad(tmp_path: Path) -> None:
    empty = tmp_path / "empty.pcap"
    empty.write_bytes(b"")
    assert gc.isenabled()
    with pytest.raises(ResetlensError):
        analyze(bundle_from_args([f"x={empty}"], [], []))
    assert gc.isenabled()
