"""Batch discovery: bundle folders, loose captures grouped by archive name patterns, rotation, hashes."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from conftest import CORPUS_PCAPS

from resetlens.batch.discover import SERIES_GAP_S, content_hash, discover, parse_capture_name

SMALL = CORPUS_PCAPS / "zeek_tcp_single-rst.pcap"
OTHER = CORPUS_PCAPS / "zeek_tcp_syn-then-rst.pcap"


def put(path: Path, src: Path = SMALL) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, path)
    return path


def by_name(archive: Path, **kw) -> dict:
    return {b.name: b for b in discover(archive, **kw)}


def test_manifest_folder_is_one_bundle_and_is_not_searched_further(tmp_path: Path) -> None:
    b = tmp_path / "incidents" / "payments-502"
    (b).mkdir(parents=True)
    (b / "resetlens.toml").write_text('[[capture]]\nvantage = "edge"\npath = "captures/edge.pcap"\n')
    put(b / "captures" / "edge.pcap")
    put(b / "nested" / "other" / "x.pcap")  # inside the bundle: not a bundle of its own
    (b / "logs").mkdir()
    (b / "logs" / "nginx-error.log").write_text("2024/05/01 12:00:00 [error] 1#1: *1 upstream reset\n")
    found = by_name(tmp_path)
    assert list(found) == ["incidents/payments-502"]
    spec = found["incidents/payments-502"]
    assert spec.kind == "manifest"
    rels = sorted(p.relative_to(b).as_posix() for p in spec.files)
    assert rels == ["captures/edge.pcap", "logs/nginx-error.log", "nested/other/x.pcap", "resetlens.toml"]


def test_folder_of_captures_is_one_bundle_with_one_vantage_per_file(tmp_path: Path) -> None:
    inc = tmp_path / "2024" / "inc-7"
    put(inc / "client.pcap")
    put(inc / "server.pcapng", CORPUS_PCAPS / "zeek_ldap_gap-data-missing.pcapng")
    put(inc / "proxy.pcap.gz")  # the name says gzip; content is not checked at discovery
    (inc / "notes.txt.bak").write_text("not a capture")
    found = by_name(tmp_path)
    assert list(found) == ["2024/inc-7"]
    spec = found["2024/inc-7"]
    assert spec.kind == "captures"
    assert sorted(c.vantage for c in spec.captures) == ["client", "proxy", "server"]
    assert all(len(c.paths) == 1 for c in spec.captures)


def test_tcpdump_C_rotation_is_one_capture_in_number_order(tmp_path: Path) -> None:
    inc = tmp_path / "inc"
    names = ["edge.pcap", "edge.pcap1", "edge.pcap2", "edge.pcap10", "core.pcap00", "core.pcap01"]
    for n in names:
        put(inc / n)
    (spec,) = discover(tmp_path)
    caps = {c.vantage: [p.name for p in c.paths] for c in spec.captures}
    assert caps == {
        "edge": ["edge.pcap", "edge.pcap1", "edge.pcap2", "edge.pcap10"],
        "core": ["core.pcap00", "core.pcap01"],
    }


def test_tcpdump_G_strftime_rotation_is_one_capture_in_time_order(tmp_path: Path) -> None:
    inc = tmp_path / "gw"
    for stamp in ("2024-05-01_12-10-00", "2024-05-01_12-00-00", "2024-05-01_12-05-00"):
        put(inc / f"gateway-{stamp}.pcap")
    (spec,) = discover(tmp_path)
    (cap,) = spec.captures
    assert cap.vantage == "gateway"
    assert [p.name for p in cap.paths] == [
        "gateway-2024-05-01_12-00-00.pcap",
        "gateway-2024-05-01_12-05-00.pcap",
        "gateway-2024-05-01_12-10-00.pcap",
    ]


def test_host_vantage_timestamp_names_give_host_and_vantage(tmp_path: Path) -> None:
    c = parse_capture_name(Path("web01_eth0_20240501T120000Z.pcap.gz"))
    assert c is not None
    assert (c.host, c.vantage, c.stamp) == ("web01", "eth0", 1714564800.0)
    c = parse_capture_name(Path("lb-2_front_side_1714564800.pcapng"))
    assert c is not None
    assert (c.host, c.vantage, c.stamp) == ("lb-2", "front_side", 1714564800.0)
    compact = parse_capture_name(Path("capture-20240501120000.pcap"))  # tcpdump -G with %Y%m%d%H%M%S
    assert compact is not None
    assert (compact.host, compact.vantage, compact.stamp) == (None, "capture", 1714564800.0)
    gz = parse_capture_name(Path("edge.pcap3.gz"))  # a -C file compressed afterwards
    assert gz is not None
    assert (gz.vantage, gz.number) == ("edge", 3)
    plain = parse_capture_name(Path("client_side.pcap"))  # no stamp: the stem is the vantage
    assert plain is not None
    assert (plain.host, plain.vantage) == (None, "client_side")
    assert parse_capture_name(Path("nginx-error.log")) is None


def test_loose_archive_captures_cluster_into_incidents_by_time(tmp_path: Path) -> None:
    # two incidents, a day apart; each seen by three vantages, one of them rotated (-G) twice
    for day in ("20240501", "20240502"):
        put(tmp_path / f"web01_eth0_{day}T120000Z.pcap")
        put(tmp_path / f"web01_eth0_{day}T120500Z.pcap")
        put(tmp_path / f"lb01_eth0_{day}T120030Z.pcap")
        put(tmp_path / f"db01_bond0_{day}T115950Z.pcap.gz")
    found = by_name(tmp_path)
    assert sorted(found) == ["20240501T115950Z", "20240502T115950Z"]
    spec = found["20240501T115950Z"]
    caps = {c.vantage: (c.host, [p.name for p in c.paths]) for c in spec.captures}
    # "eth0" is on two hosts: the vantage names take the host to stay unique
    assert caps == {
        "bond0": ("db01", ["db01_bond0_20240501T115950Z.pcap.gz"]),
        "lb01-eth0": ("lb01", ["lb01_eth0_20240501T120030Z.pcap"]),
        "web01-eth0": ("web01", ["web01_eth0_20240501T120000Z.pcap", "web01_eth0_20240501T120500Z.pcap"]),
    }


def test_one_vantage_with_a_long_gap_is_two_captures(tmp_path: Path) -> None:
    put(tmp_path / "site" / "fw_wan_1714564800.pcap")
    put(tmp_path / "site" / "fw_wan_1714564860.pcap")
    put(tmp_path / "site" / f"fw_wan_{1714564860 + SERIES_GAP_S + 1}.pcap")
    found = by_name(tmp_path)
    assert len(found) == 2
    assert sorted(len(b.captures[0].paths) for b in found.values()) == [1, 2]
    assert all(name.startswith("site@") for name in found)


def test_captures_child_folder_and_logs_belong_to_the_parent_bundle(tmp_path: Path) -> None:
    inc = tmp_path / "inc-9"
    put(inc / "captures" / "client.pcap")
    put(inc / "captures" / "server.pcap")
    put(inc / "captures" / "edge" / "fw.pcap")  # deeper inside captures/: still this bundle
    (inc / "haproxy.log").write_text("May  1 12:00:00 lb haproxy[1]: x\n")
    (inc / "logs").mkdir()
    (inc / "logs" / "nginx-error.log").write_text("2024/05/01 12:00:00 [error] 1#1: *1 x\n")
    put(inc / "snapshots" / "lb" / "ss-before.pcap")  # snapshots are not captures of the incident
    found = by_name(tmp_path)
    assert list(found) == ["inc-9"]
    spec = found["inc-9"]
    assert sorted(c.vantage for c in spec.captures) == ["client", "fw", "server"]
    assert inc / "haproxy.log" in spec.files
    assert inc / "logs" / "nginx-error.log" in spec.files


def test_suffixless_capture_is_sniffed_and_dot_folders_and_output_are_skipped(tmp_path: Path) -> None:
    put(tmp_path / "a" / "dump")  # tcpdump -w dump: no extension, pcap magic
    (tmp_path / "a" / "README").write_text("just text")
    put(tmp_path / ".trash" / "x.pcap")
    put(tmp_path / "reports-out" / "y.pcap")
    found = by_name(tmp_path, exclude=[tmp_path / "reports-out"])
    assert list(found) == ["a"]
    assert [c.vantage for c in found["a"].captures] == ["dump"]


def test_content_hash_changes_with_content_not_with_mtime(tmp_path: Path) -> None:
    f = put(tmp_path / "b" / "x.pcap")
    put(tmp_path / "b" / "y.pcap", OTHER)
    (spec,) = discover(tmp_path)
    h1 = spec.hash()
    assert h1 == content_hash(spec.root, list(reversed(spec.files)))  # order-independent
    os.utime(f, (1, 1))
    assert spec.hash() == h1
    data = f.read_bytes()
    f.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))  # same size, one byte changed
    assert spec.hash() != h1
    h2 = spec.hash()
    f.rename(tmp_path / "b" / "z.pcap")  # same bytes, another name
    (spec,) = discover(tmp_path)
    assert spec.hash() not in (h1, h2)


def test_manifest_files_outside_the_bundle_count_in_its_hash(tmp_path: Path) -> None:
    shared = put(tmp_path / "shared" / "edge.pcap")
    b = tmp_path / "archive" / "inc"
    b.mkdir(parents=True)
    (b / "resetlens.toml").write_text('[[capture]]\nvantage = "edge"\npath = "../../shared/edge.pcap"\n')
    (spec,) = discover(tmp_path / "archive")
    assert shared in spec.files
    h1 = spec.hash()
    put(shared, OTHER)
    assert spec.hash() != h1


def test_symlinked_capture_file_is_taken(tmp_path: Path) -> None:
    real = put(tmp_path / "store" / "abc.pcap")
    (tmp_path / "archive" / "inc").mkdir(parents=True)
    (tmp_path / "archive" / "inc" / "client.pcap").symlink_to(real)
    (spec,) = discover(tmp_path / "archive")
    assert [c.vantage for c in spec.captures] == ["client"]


def test_same_name_in_two_subfolders_is_two_vantages_not_a_rotation(tmp_path: Path) -> None:
    inc = tmp_path / "inc"
    put(inc / "captures" / "lb1" / "eth0.pcap")
    put(inc / "captures" / "lb2" / "eth0.pcap", OTHER)
    (spec,) = discover(tmp_path)
    caps = {c.vantage: [p.parent.name for p in c.paths] for c in spec.captures}
    assert caps == {"lb1-eth0": ["lb1"], "lb2-eth0": ["lb2"]}
