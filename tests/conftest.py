"""Shared test locations. Tests needing root + namespaces are marked `lab`, Chromium ones `browser`."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
CORPUS = SHARED / "corpus"
CORPUS_PCAPS = CORPUS / "pcaps"
FIXTURES = ROOT / "fixtures"
LAB_FIXTURES = FIXTURES / "lab"
TEST_OUTPUT = ROOT / "test-output"


def have_root_netns() -> bool:
    return os.geteuid() == 0 and shutil.which("ip") is not None


@pytest.fixture(scope="session")
def corpus_pcaps() -> list[Path]:
    if not CORPUS_PCAPS.is_dir():
        pytest.skip(f"corpus not found at {CORPUS_PCAPS}")
    return sorted(p for p in CORPUS_PCAPS.iterdir() if p.suffix in (".pcap", ".pcapng"))


@pytest.fixture(scope="session")
def test_output() -> Path:
    TEST_OUTPUT.mkdir(exist_ok=True)
    return TEST_OUTPUT
