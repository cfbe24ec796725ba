"""Link types (tcpdump LINKTYPE_* values) the reader decodes, and their names."""

from __future__ import annotations

LT_NULL = 0  # BSD loopback: 4-byte address family in the writer's byte order
LT_ETHERNET = 1  # Ethernet II / 802.3
LT_FDDI = 10  # FDDI, 802.2 LLC/SNAP follows the MAC header
LT_RAW_12 = 12  # raw IP as DLT_RAW is numbered on most BSDs
LT_RAW_14 = 14  # raw IP as DLT_RAW is numbered on OpenBSD
LT_RAW = 101  # raw IP (version nibble decides)
LT_LOOP = 108  # OpenBSD loopback: 4-byte address family in network order
LT_SLL = 113  # Linux cooked capture v1 (`-i any`, old libpcap)
LT_IPV4 = 228  # raw IPv4
LT_IPV6 = 229  # raw IPv6
LT_SLL2 = 276  # Linux cooked capture v2 (`-i any`, libpcap >= 1.10)

LINKTYPE_NAMES: dict[int, str] = {
    LT_NULL: "null",
    LT_ETHERNET: "ether",
    LT_FDDI: "fddi",
    LT_RAW_12: "raw",
    LT_RAW_14: "raw",
    LT_RAW: "raw",
    LT_LOOP: "loop",
    LT_SLL: "linux-sll",
    LT_IPV4: "ipv4",
    LT_IPV6: "ipv6",
    LT_SLL2: "linux-sll2",
}

SUPPORTED = frozenset(LINKTYPE_NAMES)  # link types whose frames are decoded

_OTHER_NAMES: dict[int, str] = {
    6: "ieee802-5",
    9: "ppp",
    105: "ieee802-11",
    119: "prism",
    127: "ieee802-11-radiotap",
    147: "user0",
    187: "bluetooth-hci-h4",
    189: "usb-linux",
    220: "usb-linux-mmapped",
    249: "netlink",
}


def linktype_name(linktype: int) -> str:
    """'ether' for 1, 'linktype-147' style for anything unnamed."""
    return LINKTYPE_NAMES.get(linktype) or _OTHER_NAMES.get(linktype) or f"linktype-{linktype}"
