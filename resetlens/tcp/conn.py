"""Zeek-compatible TCP connections at one vantage: conn_state, history, splitting, byte counts.

A faithful re-statement of Zeek's TCP session logic (zeek/zeek `TCPSessionAdapter.cc`, `TCP.cc`,
`TCP_Endpoint.cc`, `TCP_Reassembler.cc`, `IPBasedAnalyzer.cc`, `conn/main.zeek`): the same endpoint
state machine, the same history letters and repetition rules, the same reuse test for a SYN on a known
4-tuple, and Zeek's timers (attempt, expire, close, partial-close, reset, inactivity) evaluated lazily
when the next packet of the tuple arrives. Per-packet work is integer arithmetic on plain attributes, so
the loop can later be moved to a compiled accelerator unchanged.

Known simplifications (each shows up as a documented divergence in tests/test_zeek_agreement.py if it
ever matters): checksums are ignored (Zeek run with -C); sequence numbers are compared within one 32-bit
window (no >2 GB wrap tracking); content gaps are detected with a per-direction "next contiguous byte"
reassembler without Zeek's pending-data close deferral; likely_server_ports is a fixed list.
"""

from __future__ import annotations

import re

from resetlens.capture.table import ACK, FIN, RST, SYN
from resetlens.tcp.zeek import (
    CLOSED,
    ESTABLISHED,
    HIST_ACK_PKT,
    HIST_DATA_PKT,
    HIST_FIN_PKT,
    HIST_FIN_RST_PKT,
    HIST_MULTI_FLAG_PKT,
    HIST_RESP_SHIFT,
    HIST_RST_PKT,
    HIST_SYN_PKT,
    INACTIVE,
    LIKELY_SERVER_PORTS,
    PARTIAL,
    RESET,
    SYN_ACK_SENT,
    SYN_SENT,
    TCP_ATTEMPT_DELAY,
    TCP_CLOSE_DELAY,
    TCP_CONNECTION_LINGER,
    TCP_INACTIVITY_TIMEOUT,
    TCP_PARTIAL_CLOSE_DELAY,
    TCP_RESET_DELAY,
    TCP_SESSION_TIMER,
    TCP_SYN_TIMEOUT,
    TOO_LARGE_SEQ_DELTA,
    UDP_INACTIVITY_TIMEOUT,
)

# Analyzer timers (kind codes in Conn.timers).
T_ATTEMPT = 0  # unanswered SYN
T_EXPIRE = 1  # periodic linger check
T_PARTIAL_CLOSE = 2  # half-close of a partial connection
T_DELETE = 3  # close complete: remove
T_RESET = 4  # RST after FIN: remove

_NEVER = float("inf")
MAX_BLOCKS = 8  # out-of-order data blocks remembered per direction for gap detection
_RSTOS0 = re.compile(r"\^?S[^HAFGIQ]*R.*")  # Zeek's conn_state() test for RSTOS0 (whole-string match)
_MASK32 = 0xFFFFFFFF
_CONTROL = SYN | FIN | RST | ACK  # flags that decide whether the fast path applies


def seq_delta(a: int, b: int) -> int:
    """a - b in 32-bit sequence space, as a signed 32-bit value (Zeek's seq_delta)."""
    return ((a - b + 0x80000000) & _MASK32) - 0x80000000


class Endpoint:
    """One side of a connection (Zeek's TCP_Endpoint), only the integers Zeek's logic reads."""

    __slots__ = (
        "FIN_cnt",
        "FIN_seq",
        "RST_cnt",
        "ack_sent",
        "ack_seq",
        "blocks",
        "data_pkts",
        "did_close",
        "gap_cnt",
        "gap_thresh",
        "hist_last_FIN",
        "hist_last_RST",
        "hist_last_SYN",
        "is_orig",
        "last_seq",
        "pkts",
        "prev_state",
        "reassem",
        "rxmt_cnt",
        "rxmt_thresh",
        "start_seq",
        "state",
        "trim_seq",
        "win0_cnt",
        "win0_thresh",
        "win_sent",
        "wscale",
    )

    def __init__(self, is_orig: bool) -> None:
        self.is_orig = is_orig
        self.state = INACTIVE
        self.prev_state = INACTIVE
        self.start_seq = 0  # absolute
        self.last_seq = 0  # absolute: one past the highest sequence sent
        self.ack_seq = 0  # absolute: highest sequence the peer acknowledged
        self.FIN_cnt = 0
        self.RST_cnt = 0
        self.FIN_seq = 0  # relative
        self.did_close = False
        self.hist_last_SYN = 0
        self.hist_last_FIN = 0
        self.hist_last_RST = 0
        self.rxmt_cnt = 0
        self.rxmt_thresh = 1
        self.win0_cnt = 0
        self.win0_thresh = 1
        self.gap_cnt = 0
        self.gap_thresh = 1
        self.reassem = 1  # relative: next byte not yet delivered in order
        self.trim_seq = 1  # relative: highest ack processed
        self.blocks: list[tuple[int, int]] = []  # relative [start, end) received above reassem
        self.pkts = 0
        self.data_pkts = 0
        self.ack_sent = -1  # absolute ack field of the last ACK this endpoint sent (-1 none)
        self.win_sent = -1  # window field of this endpoint's last non-RST packet
        self.wscale = False  # this endpoint's SYN carried a window-scale option

    def size(self, peer: Endpoint) -> int:
        """Payload bytes from sequence numbers (Zeek's TCP_Endpoint::Size)."""
        if (
            self.prev_state == SYN_SENT
            and self.state == RESET
            and peer.state == INACTIVE
            and seq_delta(self.ack_seq, self.start_seq) not in (0, 1)
        ):
            return 0
        size = max(seq_delta(self.last_seq, self.start_seq), seq_delta(self.ack_seq, self.start_seq))
        if size <= 0:
            return 0
        size -= 1
        if self.FIN_cnt > 0 and size != 0:
            size -= 1
        return size


def _is_clean(e: Endpoint) -> bool:
    return e.state == ESTABLISHED or (e.state == CLOSED and e.prev_state == ESTABLISHED)


class Conn:
    """One connection as Zeek would log it, plus what the RST stage needs."""

    __slots__ = (
        "first_frame",
        "first_packet_seen",
        "hist_seen",
        "history",
        "idx",
        "inactivity",
        "is_active",
        "is_partial",
        "key",
        "last_frame",
        "last_time",
        "next_timer",
        "npkts",
        "orig",
        "orig_addr",
        "orig_first",
        "prev_ts",
        "resp",
        "resp_addr",
        "rst_count",
        "start_time",
        "timers",
        "timers_canceled",
    )

    def __init__(
        self, idx: int, key: tuple, orig_addr: tuple, resp_addr: tuple, t: float, frame: int
    ) -> None:
        self.idx = idx
        self.key = key
        self.orig_addr = orig_addr  # (hi, lo, port)
        self.resp_addr = resp_addr
        self.orig_first = key[0] == orig_addr  # the originator is the key's first (lower) endpoint
        self.orig = Endpoint(True)
        self.resp = Endpoint(False)
        self.history: list[str] = []
        self.hist_seen = 0
        self.start_time = t
        self.last_time = t
        self.is_active = True
        self.is_partial = False
        self.first_packet_seen = 0  # 1 orig, 2 resp
        self.timers: list[tuple[float, int]] = [(t + TCP_SYN_TIMEOUT, T_EXPIRE)]
        self.next_timer = (
            t + TCP_SYN_TIMEOUT
        )  # earliest pending timer (the loop skips timer checks before it)
        self.timers_canceled = False
        self.inactivity = UDP_INACTIVITY_TIMEOUT
        self.first_frame = frame
        self.last_frame = frame
        self.npkts = 0
        self.rst_count = 0
        self.prev_ts = t  # time of the latest packet (Zeek's last_time stops at a full close)

    # -- history -------------------------------------------------------------------------------
    def check_history(self, ep: Endpoint, mask: int, code: str) -> bool:
        """True when this letter was already recorded for this direction (Connection::CheckHistory)."""
        if not ep.is_orig:
            mask <<= HIST_RESP_SHIFT
            code = code.lower()
        if self.hist_seen & mask:
            return True
        self.hist_seen |= mask
        self.history.append(code)
        return False

    def add_history(self, ep: Endpoint, code: str) -> None:
        self.history.append(code if ep.is_orig else code.lower())

    def flip_roles(self) -> None:
        self.orig, self.resp = self.resp, self.orig
        self.orig.is_orig = True
        self.resp.is_orig = False
        self.orig_addr, self.resp_addr = self.resp_addr, self.orig_addr
        self.orig_first = not self.orig_first
        fps = self.first_packet_seen
        self.first_packet_seen = (2 if fps & 1 else 0) | (1 if fps & 2 else 0)
        self.is_partial = False
        self.history.append("^")

    def is_closed(self) -> bool:
        return self.orig.did_close or self.resp.did_close

    # -- results -------------------------------------------------------------------------------
    def conn_state(self) -> str:
        """Zeek's conn_state() for TCP (scripts/base/protocols/conn/main.zeek)."""
        os_, rs = self.orig.state, self.resp.state
        o_inactive = os_ in (INACTIVE, PARTIAL)
        r_inactive = rs in (INACTIVE, PARTIAL)
        if rs == RESET:
            if os_ in (SYN_SENT, SYN_ACK_SENT) or (
                os_ == RESET and self.orig.size(self.resp) == 0 and self.resp.size(self.orig) == 0
            ):
                return "REJ"
            return "RSTRH" if o_inactive else "RSTR"
        if os_ == RESET:
            if r_inactive:
                return "RSTOS0" if _RSTOS0.fullmatch(self.history_str()) else "OTH"
            return "RSTO"
        if rs == CLOSED and os_ == CLOSED:
            return "SF"
        if os_ == CLOSED:
            return "SH" if r_inactive else "S2"
        if rs == CLOSED:
            return "SHR" if o_inactive else "S3"
        if os_ == SYN_SENT and rs == INACTIVE:
            return "S0"
        if os_ == ESTABLISHED and rs == ESTABLISHED:
            return "S1"
        return "OTH"

    def history_str(self) -> str:
        return "".join(self.history)

    # -- timers --------------------------------------------------------------------------------
    def add_timer(self, t: float, kind: int) -> None:
        if not self.timers_canceled:
            self.timers.append((t, kind))
            if t < self.next_timer:
                self.next_timer = t

    def expired_by(self, t: float) -> bool:
        """Run the timers due at or before t (state is frozen since the last packet): removed?"""
        if self.last_time + self.inactivity <= t:
            return True
        while self.timers:
            self.timers.sort()
            due, kind = self.timers[0]
            if due > t:
                self.next_timer = due
                return False
            self.timers.pop(0)
            if self._fire(due, kind):
                return True
        self.next_timer = _NEVER
        return False

    def _fire(self, due: float, kind: int) -> bool:
        o, r = self.orig, self.resp
        if kind == T_DELETE:
            return True
        if not self.is_active:
            return False
        if kind == T_ATTEMPT:
            if o.state in (SYN_SENT, SYN_ACK_SENT) and r.state == INACTIVE:
                self.is_active = False
                return True
            return False
        if kind == T_EXPIRE:
            if self.last_time + TCP_CONNECTION_LINGER < due:
                if o.did_close or r.did_close:
                    if (
                        (o.did_close and r.did_close)
                        or o.state == RESET
                        or r.state == RESET
                        or o.state == INACTIVE
                        or r.state == INACTIVE
                    ):
                        self.is_active = False
                        return True
                if r.state == INACTIVE and o.state == INACTIVE:
                    return True
            self.add_timer(due + TCP_SESSION_TIMER, T_EXPIRE)
            return False
        if kind == T_PARTIAL_CLOSE:
            if o.state != INACTIVE and r.state != INACTIVE and not (o.did_close and r.did_close):
                return not (o.state == RESET or r.state == RESET)
            return False
        if kind == T_RESET:
            return True
        return False


def is_reuse(c: Conn, flags: int, seq: int) -> bool:
    """A SYN on a known tuple starts a new connection? (TCPSessionAdapter::IsReuse)."""
    if not flags & SYN:
        return False
    conn_orig = c.orig
    if flags & ACK:
        if c.orig.state != INACTIVE:
            return False
        conn_orig = c.resp
    if not c.is_closed():
        if seq == conn_orig.start_seq:
            return False
        if (
            not flags & ACK
            and conn_orig.state == SYN_ACK_SENT
            and c.resp.state == INACTIVE
            and seq == c.resp.start_seq
        ):
            return False
    return True


def wants_flip(flags: int, sport: int, dport: int) -> bool:
    """Should the first packet's destination be the originator? (TCPAnalyzer::WantConnection)."""
    if flags & SYN and not flags & ACK:
        return False
    if flags & SYN:
        # SYN-ACK first: the sender is the responder (Zeek baseline core.conn-size-flip, ctu-64702-888).
        return True
    if sport in LIKELY_SERVER_PORTS:
        if dport in LIKELY_SERVER_PORTS:
            return sport < dport
        return True
    return False


def process_packet(
    c: Conn, is_orig: bool, t: float, flags: int, seq: int, ack: int, plen: int, caplen: int, window: int
) -> None:
    """One segment through Zeek's TCPAnalyzer::DeliverPacket logic."""
    ep = c.orig if is_orig else c.resp
    peer = c.resp if is_orig else c.orig
    ep.pkts += 1
    if (
        flags & _CONTROL == ACK
        and window
        and ep.state == ESTABLISHED
        and peer.state == ESTABLISHED
        and c.first_packet_seen == 3
        and not ep.blocks
    ):
        # Fast path: an ACK or data segment inside an established connection. The same steps as below
        # with every branch that cannot apply removed (no flag, state or partial-status changes).
        rel_seq = ((seq - ep.start_seq + 0x80000000) & _MASK32) - 0x80000000
        if rel_seq >= 0:
            mask = HIST_DATA_PKT if plen else HIST_ACK_PKT
            if not ep.is_orig:
                mask <<= HIST_RESP_SHIFT
            if not c.hist_seen & mask:
                c.hist_seen |= mask
                letter = "D" if plen else "A"
                c.history.append(letter if ep.is_orig else letter.lower())
            ep.win_sent = window
            c.last_time = t
            ep.ack_sent = ack
            rel_ack = ((ack - peer.start_seq + 0x80000000) & _MASK32) - 0x80000000
            if rel_ack < 0:
                rel_ack = 0
            else:
                delta_ack = ((ack - peer.ack_seq + 0x80000000) & _MASK32) - 0x80000000
                if delta_ack > 0 and not (ack == 0 and delta_ack > TOO_LARGE_SEQ_DELTA):
                    peer.ack_seq = ack
            end_seq = (seq + plen) & _MASK32
            if ((end_seq - ep.last_seq + 0x80000000) & _MASK32) - 0x80000000 > 0:
                ep.last_seq = end_seq
            elif plen:
                ep.rxmt_cnt += 1
                if ep.rxmt_cnt == ep.rxmt_thresh:
                    c.add_history(ep, "T")
                    ep.rxmt_thresh *= 10
            if rel_ack > peer.trim_seq:
                _ack_received(c, peer, rel_ack)
            if plen:
                ep.data_pkts += 1
                if caplen >= plen:
                    if rel_seq <= ep.reassem:
                        if rel_seq + plen > ep.reassem:
                            ep.reassem = rel_seq + plen
                    else:
                        _data_sent(ep, rel_seq, plen)
            return
    syn = flags & SYN
    fin = flags & FIN
    rst = flags & RST
    has_ack = flags & ACK

    # SetPartialStatus
    if ep.is_orig:
        if not c.first_packet_seen & 1:
            c.is_partial = (not syn) or bool(has_ack)
    elif not c.first_packet_seen & 2 and not c.is_partial:
        c.is_partial = not syn

    seg_len = plen + (1 if syn else 0) + (1 if fin else 0) - (plen if rst else 0)
    end_seq = (seq + seg_len) & _MASK32

    # init_endpoint
    st = ep.state
    if st == INACTIVE:
        ep.start_seq = ep.ack_seq = seq if syn else (seq - 1) & _MASK32
        ep.last_seq = end_seq if syn else seq  # a partial start is not a duplicate of itself
    elif syn and (
        (st in (SYN_SENT, SYN_ACK_SENT) and seq != ep.start_seq)
        or st in (ESTABLISHED, PARTIAL)
        or (st == RESET and ep.prev_state == INACTIVE)
    ):
        ep.start_seq = ep.ack_seq = seq
        ep.last_seq = end_seq

    rel_seq = seq_delta(seq, ep.start_seq)
    underflow = rel_seq < 0

    # update_history
    bits = (1 if syn else 0) + (1 if fin else 0) + (1 if rst else 0)
    if bits > 1:
        if fin and rst:
            c.check_history(ep, HIST_FIN_RST_PKT, "I")
        else:
            c.check_history(ep, HIST_MULTI_FLAG_PKT, "Q")
    elif bits == 1:
        if syn:
            code = "H" if has_ack else "S"
            if c.check_history(ep, HIST_SYN_PKT, code) and rel_seq != ep.hist_last_SYN:
                c.add_history(ep, code)
            ep.hist_last_SYN = rel_seq
        elif fin:
            if c.check_history(ep, HIST_FIN_PKT, "F") and rel_seq + plen != ep.hist_last_FIN:
                c.add_history(ep, "F")
            ep.hist_last_FIN = rel_seq + plen
        else:
            if c.check_history(ep, HIST_RST_PKT, "R") and rel_seq != ep.hist_last_RST:
                c.add_history(ep, "R")
            ep.hist_last_RST = rel_seq
    elif plen:
        c.check_history(ep, HIST_DATA_PKT, "D")
    elif has_ack:
        c.check_history(ep, HIST_ACK_PKT, "A")

    # update_window: zero windows
    if window == 0 and not rst and peer.state != CLOSED and ep.state != RESET:
        ep.win0_cnt += 1
        if ep.win0_cnt == ep.win0_thresh:
            c.add_history(ep, "W")
            ep.win0_thresh *= 10
    if not rst:
        ep.win_sent = window

    if not (c.orig.did_close and c.resp.did_close):
        c.last_time = t

    if fin:
        ep.FIN_cnt += 1
        ep.FIN_seq = rel_seq + seg_len
    if rst:
        ep.RST_cnt += 1

    rel_ack = 0
    if has_ack:
        ep.ack_sent = ack
        if peer.state == INACTIVE:
            rel_ack = 1
            peer.start_seq = peer.ack_seq = peer.last_seq = (ack - 1) & _MASK32
        else:
            rel_ack = seq_delta(ack, peer.start_seq)
            if rel_ack < 0:
                rel_ack = 0
            elif not rst:
                delta_ack = seq_delta(ack, peer.ack_seq)
                if not (ack == 0 and delta_ack > TOO_LARGE_SEQ_DELTA) and delta_ack > 0:
                    peer.ack_seq = ack

    # update_last_seq
    delta_last = seq_delta(end_seq, ep.last_seq)
    if (syn or rst) and (delta_last > TOO_LARGE_SEQ_DELTA or delta_last < -TOO_LARGE_SEQ_DELTA):
        pass
    elif fin and seq_delta(ep.last_seq, ep.start_seq) == 1:
        ep.last_seq = end_seq
    elif ep.state == RESET:
        pass
    elif delta_last > 0:
        ep.last_seq = end_seq
    elif plen > 0:
        ep.rxmt_cnt += 1
        if ep.rxmt_cnt == ep.rxmt_thresh:
            c.add_history(ep, "T")
            ep.rxmt_thresh *= 10

    do_close, gen_event = _state_machine(c, t, ep, peer, seq, ack, plen, is_orig, flags, delta_last)

    if has_ack:
        _ack_received(c, peer, rel_ack)

    if plen > 0 and not rst and not underflow:
        ep.data_pkts += 1
        if caplen >= plen:
            _data_sent(ep, rel_seq + 1 if syn else rel_seq, plen)

    if do_close:
        _connection_closed(c, ep, peer, gen_event)

    c.first_packet_seen |= 1 if is_orig else 2


def _set_state(c: Conn, ep: Endpoint, peer: Endpoint, new: int) -> None:
    if new != ep.state:
        if new > SYN_ACK_SENT and ep.state <= SYN_ACK_SENT and peer.state <= SYN_ACK_SENT:
            c.inactivity = TCP_INACTIVITY_TIMEOUT
        ep.prev_state = ep.state
        ep.state = new


def _state_machine(
    c: Conn, t: float, ep: Endpoint, peer: Endpoint, seq: int, ack: int, plen: int, is_orig: bool, flags: int,
    delta_last: int,
) -> tuple[bool, bool]:  # fmt: skip
    do_close = gen_event = False
    syn = flags & SYN
    fin = flags & FIN
    rst = flags & RST
    has_ack = flags & ACK
    st = ep.state
    if st == INACTIVE:
        if syn:
            if is_orig:
                _set_state(c, ep, peer, SYN_ACK_SENT if has_ack else SYN_SENT)
                c.add_timer(t + TCP_ATTEMPT_DELAY, T_ATTEMPT)
            else:
                if not has_ack and peer.state == SYN_ACK_SENT and seq == ep.start_seq:
                    # SYN/SYN-ACK reversal: flip the endpoints and establish.
                    c.is_partial = False
                    c.flip_roles()
                    _set_state(c, peer, ep, ESTABLISHED)
                    c.first_packet_seen |= 1
                if peer.state == SYN_SENT:
                    _set_state(c, peer, ep, ESTABLISHED)
                _set_state(c, ep, peer, ESTABLISHED)
        if fin:
            _set_state(c, ep, peer, CLOSED)
            do_close = gen_event = True
        if rst:
            _set_state(c, ep, peer, RESET)
            if ep.is_orig:
                is_reject = peer.state == ESTABLISHED
            else:
                is_reject = peer.state in (SYN_SENT, SYN_ACK_SENT)
            do_close = True
            gen_event = not is_reject
        if ep.state == INACTIVE:
            orig_state = c.orig.state
            if not ep.is_orig and plen == 0 and orig_state == SYN_SENT:
                pass  # an ACK before the SYN-ACK does not make a partial connection
            elif has_ack and peer.state == ESTABLISHED:
                _set_state(c, ep, peer, ESTABLISHED)
                c.is_partial = False
                c.first_packet_seen |= 1 if ep.is_orig else 2
            else:
                _set_state(c, ep, peer, PARTIAL)
    elif st in (SYN_SENT, SYN_ACK_SENT):
        if fin:
            _set_state(c, ep, peer, CLOSED)
            do_close = gen_event = True
        if rst:
            _set_state(c, ep, peer, RESET)
            c.is_active = False
            do_close = True
    elif st in (ESTABLISHED, PARTIAL):
        if syn and st == PARTIAL and peer.state == INACTIVE and not has_ack:
            _set_state(c, ep, peer, SYN_SENT)
        if fin and not rst:
            _set_state(c, ep, peer, CLOSED)
            if peer.state == RESET and peer.prev_state == CLOSED:
                _set_state(c, peer, ep, CLOSED)
            do_close = gen_event = True
        if rst:
            _set_state(c, ep, peer, RESET)
            do_close = True
            if peer.state != RESET or peer.prev_state != ESTABLISHED:
                c.is_active = False
    elif st == CLOSED:
        if rst and peer.state != CLOSED:
            _set_state(c, ep, peer, RESET)
            if not ep.did_close:
                do_close = True
            c.add_timer(t + TCP_RESET_DELAY, T_RESET)
    return do_close, gen_event


def _ack_received(c: Conn, ep: Endpoint, rel_ack: int) -> None:
    """The peer acknowledged ep's data up to rel_ack: content gaps (TCP_Reassembler::AckReceived)."""
    if ep.FIN_cnt > 0 and rel_ack >= ep.FIN_seq:
        rel_ack = ep.FIN_seq - 1
    if rel_ack <= ep.trim_seq:
        return
    ep.trim_seq = rel_ack
    if rel_ack <= ep.reassem:
        return
    if rel_ack <= 2 and c.is_partial:
        return
    covered = ep.reassem
    hole = False
    for start, end in sorted(ep.blocks):
        if start > covered:
            hole = True
            break
        covered = max(covered, end)
    if covered < rel_ack:
        hole = True
    if hole and _is_clean(ep) and _is_clean(c.resp if ep is c.orig else c.orig):
        ep.gap_cnt += 1
        if ep.gap_cnt == ep.gap_thresh:
            c.add_history(ep, "G")
            ep.gap_thresh *= 10
    ep.reassem = max(ep.reassem, rel_ack)
    _absorb(ep)


def _data_sent(ep: Endpoint, rel: int, plen: int) -> None:
    end = rel + plen
    if end <= ep.reassem:
        return
    if rel <= ep.reassem:
        ep.reassem = end
        _absorb(ep)
    elif len(ep.blocks) < MAX_BLOCKS:
        ep.blocks.append((rel, end))


def _absorb(ep: Endpoint) -> None:
    if not ep.blocks:
        return
    keep = []
    for start, end in sorted(ep.blocks):
        if start <= ep.reassem:
            if end > ep.reassem:
                ep.reassem = end
        else:
            keep.append((start, end))
    ep.blocks = keep


def _connection_closed(c: Conn, ep: Endpoint, peer: Endpoint, gen_event: bool) -> None:
    if ep.did_close:
        return
    ep.did_close = True
    close_complete = ep.state == RESET or peer.did_close or peer.state == INACTIVE
    if close_complete:
        if (ep.prev_state != INACTIVE or peer.state != INACTIVE) and gen_event:
            c.is_active = False
        # CancelTimers, then the delete timer (the only analyzer timer left).
        c.timers = [(c.last_time + TCP_CLOSE_DELAY, T_DELETE)]
        c.next_timer = c.last_time + TCP_CLOSE_DELAY
        c.timers_canceled = True
    elif ep.prev_state == INACTIVE:
        c.add_timer(c.last_time + TCP_PARTIAL_CLOSE_DELAY, T_PARTIAL_CLOSE)
    else:
        c.add_timer(c.last_time + TCP_SESSION_TIMER, T_EXPIRE)
