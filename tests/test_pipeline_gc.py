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


def test_objects_made_during_the_pause_are_not_rescanned_as_young_but_still_collected() -> None:
    """Re-enabling must not leave every object made in the pause in the young generation (the next
    allocation would scan them all); cyclic garbage made in the pause is still freed by a full collection."""
    import weakref

    class Node:
        pass

    assert gc.isenabled()
    with paused_gc():
        keep = [{"n": [i]} for i in range(50_000)]
        cycle = Node()
        cycle.me = cycle  # type: ignore[attr-defined]
        alive = weakref.ref(cycle)
        del cycle
    assert gc.isenabled()
    assert gc.get_count()[0] < 1_000  # not ~100 k young objects waiting for the next allocation
    assert gc.get_freeze_count() == 0  # nothing left frozen
    gc.collect()
    assert alive() is None  # the cycle made during the pause was collected
    assert len(keep) == 50_000
