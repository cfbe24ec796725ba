"""Compiled (numba) twin of resetlens.tcp.conn: the same per-packet Zeek logic on struct-of-arrays state.

`conn.py` is the readable reference; this module restates it statement by statement over integer arrays so
numba can compile it (tests/test_tcp_fast.py checks both give identical connections and RST snapshots on
the corpus and on synthetic traffic). Connection state lives in slots: endpoint e = 2*slot (originator)
and 2*slot+1 (responder); flipping roles swaps the two rows. Used automatically when numba imports and
RESETLENS_PURE_PYTHON is not set.
"""

from __future__ import annotations

import os

import numpy as np

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

try:
    if os.environ.get("RESETLENS_PURE_PYTHON"):
        raise ImportError("pure Python requested")
    from numba import njit

    HAVE_NUMBA = True
except ImportError:  # the pure-Python tracker is used instead
    HAVE_NUMBA = False

    def njit(*args, **kwargs):  # type: ignore[no-redef]
        def wrap(f):
            return f

        return wrap if not args or not callable(args[0]) else args[0]


FIN_F, SYN_F, RST_F, ACK_F = 0x01, 0x02, 0x04, 0x10  # TCP flag bits (table `flags` column)
MASK32 = 0xFFFFFFFF
HIST_MAX = 64  # history letters kept per connection (Zeek's is unbounded; only S/H/F/R repeat without bound)
MAX_TIMERS = 8  # pending analyzer timers per connection
MAX_BLOCKS = 8  # out-of-order data blocks remembered per direction for gap detection (conn.py: same)
NEVER = np.inf
T_ATTEMPT, T_EXPIRE, T_PARTIAL_CLOSE, T_DELETE, T_RESET = 0, 1, 2, 3, 4

# Endpoint fields (rows of E, one column per endpoint).
(
    ST, PST, SSEQ, LSEQ, ASEQ, FINC, RSTC, FINS, DCL, HSYN, HFIN, HRST, RXC, RXT, W0C, W0T, GPC, GPT, REA, TRIM,
    NBLK, PKTS, DPK, ACKS, WINS, WSC,
) = range(26)  # fmt: skip
N_EFIELDS = 26
# Connection integer fields (rows of C).
(
    C_IDX, C_HSEEN, C_HLEN, C_ACTIVE, C_PARTIAL, C_FPS, C_FFRAME, C_LFRAME, C_NPK, C_RSTN, C_OFIRST, C_FLIPS,
    C_TCANC, C_UOF, C_LIVE,
) = range(15)  # fmt: skip
N_CFIELDS = 15
# Connection float fields (rows of CF).
F_START, F_LAST, F_INACT, F_PREV, F_NEXTT = range(5)
N_FFIELDS = 5
# RST snapshot fields (rows of SN).
(
    S_ROW, S_IDX, S_SLOT, S_ORD, S_SIDE, S_FLIPS, S_SST, S_RST, S_SNEXT, S_RNEXT, S_RACK, S_RWIN, S_WSCALED,
    S_HLEN,
) = range(14)  # fmt: skip
N_SFIELDS = 14

LIKELY = np.zeros(65536, dtype=np.bool_)
LIKELY[list(LIKELY_SERVER_PORTS)] = True

# History letters as bytes.
_L = {ch: ord(ch) for ch in "SHADFRIQTWGshadfriqtwg^"}


class State:
    """All connection slots of one vantage (grown between chunks, never inside the kernel)."""

    def __init__(self, cap: int = 4096) -> None:
        self.cap = 0
        self.E = np.zeros((0, N_EFIELDS), dtype=np.int64)
        self.BS = np.zeros((0, MAX_BLOCKS), dtype=np.int64)
        self.BE = np.zeros((0, MAX_BLOCKS), dtype=np.int64)
        self.C = np.zeros((0, N_CFIELDS), dtype=np.int64)
        self.CF = np.zeros((0, N_FFIELDS), dtype=np.float64)
        self.TT = np.zeros((0, MAX_TIMERS), dtype=np.float64)
        self.TK = np.zeros((0, MAX_TIMERS), dtype=np.int64)
        self.NT = np.zeros(0, dtype=np.int64)
        self.H = np.zeros((0, HIST_MAX), dtype=np.uint8)
        self.K = np.zeros((0, 6), dtype=np.uint64)  # the slot's exact 4-tuple key (lower endpoint first)
        self.free: list[int] = []
        self.grow(cap)

    def grow(self, need_free: int) -> None:
        if len(self.free) >= need_free:
            return
        new_cap = max(2 * self.cap, self.cap + need_free - len(self.free), 16)
        add = new_cap - self.cap
        self.E = np.concatenate([self.E, np.zeros((2 * add, N_EFIELDS), dtype=np.int64)])
        self.BS = np.concatenate([self.BS, np.zeros((2 * add, MAX_BLOCKS), dtype=np.int64)])
        self.BE = np.concatenate([self.BE, np.zeros((2 * add, MAX_BLOCKS), dtype=np.int64)])
        self.C = np.concatenate([self.C, np.zeros((add, N_CFIELDS), dtype=np.int64)])
        self.CF = np.concatenate([self.CF, np.zeros((add, N_FFIELDS), dtype=np.float64)])
        self.TT = np.concatenate([self.TT, np.zeros((add, MAX_TIMERS), dtype=np.float64)])
        self.TK = np.concatenate([self.TK, np.zeros((add, MAX_TIMERS), dtype=np.int64)])
        self.NT = np.concatenate([self.NT, np.zeros(add, dtype=np.int64)])
        self.H = np.concatenate([self.H, np.zeros((add, HIST_MAX), dtype=np.uint8)])
        self.K = np.concatenate([self.K, np.zeros((add, 6), dtype=np.uint64)])
        self.free.extend(range(new_cap - 1, self.cap - 1, -1))
        self.cap = new_cap


@njit(cache=True, inline="always")
def _sd(a, b):
    return ((a - b + 0x80000000) & MASK32) - 0x80000000


@njit(cache=True)
def _add_hist(C, H, s, e, code):
    n = C[s, C_HLEN]
    if n < HIST_MAX:
        H[s, n] = code if (e & 1) == 0 else code + 32
        C[s, C_HLEN] = n + 1


@njit(cache=True)
def _check_hist(C, H, s, e, mask, code):
    if e & 1:
        mask <<= HIST_RESP_SHIFT
    if C[s, C_HSEEN] & mask:
        return True
    C[s, C_HSEEN] |= mask
    _add_hist(C, H, s, e, code)
    return False


@njit(cache=True)
def _add_timer(C, CF, TT, TK, NT, s, t, kind):
    if C[s, C_TCANC]:
        return
    n = NT[s]
    if n < MAX_TIMERS:
        TT[s, n] = t
        TK[s, n] = kind
        NT[s] = n + 1
        if t < CF[s, F_NEXTT]:
            CF[s, F_NEXTT] = t


@njit(cache=True)
def _set_state(E, C, CF, s, e, p, new):
    if new != E[e, ST]:
        if new > SYN_ACK_SENT and E[e, ST] <= SYN_ACK_SENT and E[p, ST] <= SYN_ACK_SENT:
            CF[s, F_INACT] = TCP_INACTIVITY_TIMEOUT
        E[e, PST] = E[e, ST]
        E[e, ST] = new


@njit(cache=True)
def _flip(E, BS, BE, C, H, s):
    o = 2 * s
    for f in range(N_EFIELDS):
        tmp = E[o, f]
        E[o, f] = E[o + 1, f]
        E[o + 1, f] = tmp
    for k in range(MAX_BLOCKS):
        tmp = BS[o, k]
        BS[o, k] = BS[o + 1, k]
        BS[o + 1, k] = tmp
        tmp = BE[o, k]
        BE[o, k] = BE[o + 1, k]
        BE[o + 1, k] = tmp
    C[s, C_OFIRST] = 1 - C[s, C_OFIRST]
    fps = C[s, C_FPS]
    C[s, C_FPS] = (2 if fps & 1 else 0) | (1 if fps & 2 else 0)
    C[s, C_PARTIAL] = 0
    C[s, C_FLIPS] += 1
    n = C[s, C_HLEN]
    if n < HIST_MAX:
        H[s, n] = 94  # '^'
        C[s, C_HLEN] = n + 1


@njit(cache=True)
def _size(E, e, p):
    if E[e, PST] == SYN_SENT and E[e, ST] == RESET and E[p, ST] == INACTIVE:
        d = _sd(E[e, ASEQ], E[e, SSEQ])
        if d != 0 and d != 1:
            return 0
    a = _sd(E[e, LSEQ], E[e, SSEQ])
    b = _sd(E[e, ASEQ], E[e, SSEQ])
    size = a if a > b else b
    if size <= 0:
        return 0
    size -= 1
    if E[e, FINC] > 0 and size != 0:
        size -= 1
    return size


@njit(cache=True)
def _fire(E, C, CF, TT, TK, NT, s, due, kind):
    o = 2 * s
    r = o + 1
    if kind == T_DELETE:
        return True
    if not C[s, C_ACTIVE]:
        return False
    if kind == T_ATTEMPT:
        if (E[o, ST] == SYN_SENT or E[o, ST] == SYN_ACK_SENT) and E[r, ST] == INACTIVE:
            C[s, C_ACTIVE] = 0
            return True
        return False
    if kind == T_EXPIRE:
        if CF[s, F_LAST] + TCP_CONNECTION_LINGER < due:
            if E[o, DCL] or E[r, DCL]:
                if (
                    (E[o, DCL] and E[r, DCL])
                    or E[o, ST] == RESET
                    or E[r, ST] == RESET
                    or E[o, ST] == INACTIVE
                    or E[r, ST] == INACTIVE
                ):
                    C[s, C_ACTIVE] = 0
                    return True
            if E[r, ST] == INACTIVE and E[o, ST] == INACTIVE:
                return True
        _add_timer(C, CF, TT, TK, NT, s, due + TCP_SESSION_TIMER, T_EXPIRE)
        return False
    if kind == T_PARTIAL_CLOSE:
        if E[o, ST] != INACTIVE and E[r, ST] != INACTIVE and not (E[o, DCL] and E[r, DCL]):
            return not (E[o, ST] == RESET or E[r, ST] == RESET)
        return False
    if kind == T_RESET:
        return True
    return False


@njit(cache=True)
def _expired_by(E, C, CF, TT, TK, NT, s, t):
    if CF[s, F_LAST] + CF[s, F_INACT] <= t:
        return True
    while NT[s] > 0:
        n = NT[s]
        best = 0
        for k in range(1, n):
            if TT[s, k] < TT[s, best] or (TT[s, k] == TT[s, best] and TK[s, k] < TK[s, best]):
                best = k
        due = TT[s, best]
        kind = TK[s, best]
        if due > t:
            CF[s, F_NEXTT] = due
            return False
        TT[s, best] = TT[s, n - 1]
        TK[s, best] = TK[s, n - 1]
        NT[s] = n - 1
        if _fire(E, C, CF, TT, TK, NT, s, due, kind):
            return True
    CF[s, F_NEXTT] = NEVER
    return False


@njit(cache=True)
def _is_reuse(E, s, flags, seq):
    if not flags & SYN_F:
        return False
    o = 2 * s
    r = o + 1
    co = o
    if flags & ACK_F:
        if E[o, ST] != INACTIVE:
            return False
        co = r
    if not (E[o, DCL] or E[r, DCL]):
        if seq == E[co, SSEQ]:
            return False
        if not flags & ACK_F and E[co, ST] == SYN_ACK_SENT and E[r, ST] == INACTIVE and seq == E[r, SSEQ]:
            return False
    return True


@njit(cache=True)
def _absorb(E, BS, BE, e):
    n = E[e, NBLK]
    if n == 0:
        return
    # sort blocks by start (insertion sort, n <= MAX_BLOCKS)
    for i in range(1, n):
        a, b = BS[e, i], BE[e, i]
        j = i - 1
        while j >= 0 and (BS[e, j] > a or (BS[e, j] == a and BE[e, j] > b)):
            BS[e, j + 1] = BS[e, j]
            BE[e, j + 1] = BE[e, j]
            j -= 1
        BS[e, j + 1] = a
        BE[e, j + 1] = b
    k = 0
    for i in range(n):
        if BS[e, i] <= E[e, REA]:
            if BE[e, i] > E[e, REA]:
                E[e, REA] = BE[e, i]
        else:
            BS[e, k] = BS[e, i]
            BE[e, k] = BE[e, i]
            k += 1
    E[e, NBLK] = k


@njit(cache=True)
def _data_sent(E, BS, BE, e, rel, plen):
    end = rel + plen
    if end <= E[e, REA]:
        return
    if rel <= E[e, REA]:
        E[e, REA] = end
        _absorb(E, BS, BE, e)
    elif E[e, NBLK] < MAX_BLOCKS:
        n = E[e, NBLK]
        BS[e, n] = rel
        BE[e, n] = end
        E[e, NBLK] = n + 1


@njit(cache=True)
def _clean(E, e):
    return E[e, ST] == ESTABLISHED or (E[e, ST] == CLOSED and E[e, PST] == ESTABLISHED)


@njit(cache=True)
def _ack_received(E, BS, BE, C, H, s, e, rel_ack):
    if E[e, FINC] > 0 and rel_ack >= E[e, FINS]:
        rel_ack = E[e, FINS] - 1
    if rel_ack <= E[e, TRIM]:
        return
    E[e, TRIM] = rel_ack
    if rel_ack <= E[e, REA]:
        return
    if rel_ack <= 2 and C[s, C_PARTIAL]:
        return
    _absorb(E, BS, BE, e)  # sorts the blocks
    covered = E[e, REA]
    hole = False
    for i in range(E[e, NBLK]):
        if BS[e, i] > covered:
            hole = True
            break
        if BE[e, i] > covered:
            covered = BE[e, i]
    if covered < rel_ack:
        hole = True
    if hole and _clean(E, e) and _clean(E, e ^ 1):
        E[e, GPC] += 1
        if E[e, GPC] == E[e, GPT]:
            _add_hist(C, H, s, e, 71)  # 'G'
            E[e, GPT] *= 10
    if rel_ack > E[e, REA]:
        E[e, REA] = rel_ack
    _absorb(E, BS, BE, e)


@njit(cache=True)
def _connection_closed(E, C, CF, TT, TK, NT, s, e, p, gen_event):
    if E[e, DCL]:
        return
    E[e, DCL] = 1
    if E[e, ST] == RESET or E[p, DCL] or E[p, ST] == INACTIVE:
        if (E[e, PST] != INACTIVE or E[p, ST] != INACTIVE) and gen_event:
            C[s, C_ACTIVE] = 0
        TT[s, 0] = CF[s, F_LAST] + TCP_CLOSE_DELAY
        TK[s, 0] = T_DELETE
        NT[s] = 1
        CF[s, F_NEXTT] = TT[s, 0]
        C[s, C_TCANC] = 1
    elif E[e, PST] == INACTIVE:
        _add_timer(C, CF, TT, TK, NT, s, CF[s, F_LAST] + TCP_PARTIAL_CLOSE_DELAY, T_PARTIAL_CLOSE)
    else:
        _add_timer(C, CF, TT, TK, NT, s, CF[s, F_LAST] + TCP_SESSION_TIMER, T_EXPIRE)


@njit(cache=True)
def _packet(E, BS, BE, C, CF, TT, TK, NT, H, s, is_orig, t, flags, seq, ack, plen, caplen, window):
    e = 2 * s + (0 if is_orig else 1)
    p = e ^ 1
    E[e, PKTS] += 1
    syn = flags & SYN_F
    fin = flags & FIN_F
    rst = flags & RST_F
    has_ack = flags & ACK_F

    if (e & 1) == 0:
        if not C[s, C_FPS] & 1:
            C[s, C_PARTIAL] = 1 if ((not syn) or has_ack) else 0
    elif not C[s, C_FPS] & 2 and not C[s, C_PARTIAL]:
        C[s, C_PARTIAL] = 0 if syn else 1

    seg_len = plen + (1 if syn else 0) + (1 if fin else 0) - (plen if rst else 0)
    end_seq = (seq + seg_len) & MASK32

    st = E[e, ST]
    if st == INACTIVE:
        if syn:
            E[e, SSEQ] = seq
            E[e, ASEQ] = seq
            E[e, LSEQ] = end_seq
        else:
            E[e, SSEQ] = (seq - 1) & MASK32
            E[e, ASEQ] = (seq - 1) & MASK32
            E[e, LSEQ] = seq
    elif syn and (
        ((st == SYN_SENT or st == SYN_ACK_SENT) and seq != E[e, SSEQ])
        or st == ESTABLISHED
        or st == PARTIAL
        or (st == RESET and E[e, PST] == INACTIVE)
    ):
        E[e, SSEQ] = seq
        E[e, ASEQ] = seq
        E[e, LSEQ] = end_seq

    rel_seq = _sd(seq, E[e, SSEQ])
    underflow = rel_seq < 0

    bits = (1 if syn else 0) + (1 if fin else 0) + (1 if rst else 0)
    if bits > 1:
        if fin and rst:
            _check_hist(C, H, s, e, HIST_FIN_RST_PKT, 73)  # I
        else:
            _check_hist(C, H, s, e, HIST_MULTI_FLAG_PKT, 81)  # Q
    elif bits == 1:
        if syn:
            code = 72 if has_ack else 83  # H / S
            if _check_hist(C, H, s, e, HIST_SYN_PKT, code) and rel_seq != E[e, HSYN]:
                _add_hist(C, H, s, e, code)
            E[e, HSYN] = rel_seq
        elif fin:
            if _check_hist(C, H, s, e, HIST_FIN_PKT, 70) and rel_seq + plen != E[e, HFIN]:
                _add_hist(C, H, s, e, 70)
            E[e, HFIN] = rel_seq + plen
        else:
            if _check_hist(C, H, s, e, HIST_RST_PKT, 82) and rel_seq != E[e, HRST]:
                _add_hist(C, H, s, e, 82)
            E[e, HRST] = rel_seq
    elif plen:
        _check_hist(C, H, s, e, HIST_DATA_PKT, 68)
    elif has_ack:
        _check_hist(C, H, s, e, HIST_ACK_PKT, 65)

    if window == 0 and not rst and E[p, ST] != CLOSED and E[e, ST] != RESET:
        E[e, W0C] += 1
        if E[e, W0C] == E[e, W0T]:
            _add_hist(C, H, s, e, 87)  # W
            E[e, W0T] *= 10
    if not rst:
        E[e, WINS] = window

    if not (E[2 * s, DCL] and E[2 * s + 1, DCL]):
        CF[s, F_LAST] = t

    if fin:
        E[e, FINC] += 1
        E[e, FINS] = rel_seq + seg_len
    if rst:
        E[e, RSTC] += 1

    rel_ack = 0
    if has_ack:
        E[e, ACKS] = ack
        if E[p, ST] == INACTIVE:
            rel_ack = 1
            v = (ack - 1) & MASK32
            E[p, SSEQ] = v
            E[p, ASEQ] = v
            E[p, LSEQ] = v
        else:
            rel_ack = _sd(ack, E[p, SSEQ])
            if rel_ack < 0:
                rel_ack = 0
            elif not rst:
                delta_ack = _sd(ack, E[p, ASEQ])
                if not (ack == 0 and delta_ack > TOO_LARGE_SEQ_DELTA) and delta_ack > 0:
                    E[p, ASEQ] = ack

    delta_last = _sd(end_seq, E[e, LSEQ])
    if (syn or rst) and (delta_last > TOO_LARGE_SEQ_DELTA or delta_last < -TOO_LARGE_SEQ_DELTA):
        pass
    elif fin and _sd(E[e, LSEQ], E[e, SSEQ]) == 1:
        E[e, LSEQ] = end_seq
    elif E[e, ST] == RESET:
        pass
    elif delta_last > 0:
        E[e, LSEQ] = end_seq
    elif plen > 0:
        E[e, RXC] += 1
        if E[e, RXC] == E[e, RXT]:
            _add_hist(C, H, s, e, 84)  # T
            E[e, RXT] *= 10

    # --- state machine (conn._state_machine) ---
    do_close = False
    gen_event = False
    st = E[e, ST]
    if st == INACTIVE:
        if syn:
            if is_orig:
                _set_state(E, C, CF, s, e, p, SYN_ACK_SENT if has_ack else SYN_SENT)
                _add_timer(C, CF, TT, TK, NT, s, t + TCP_ATTEMPT_DELAY, T_ATTEMPT)
            else:
                if not has_ack and E[p, ST] == SYN_ACK_SENT and seq == E[e, SSEQ]:
                    C[s, C_PARTIAL] = 0
                    _flip(E, BS, BE, C, H, s)
                    e ^= 1
                    p ^= 1
                    _set_state(E, C, CF, s, p, e, ESTABLISHED)
                    C[s, C_FPS] |= 1
                if E[p, ST] == SYN_SENT:
                    _set_state(E, C, CF, s, p, e, ESTABLISHED)
                _set_state(E, C, CF, s, e, p, ESTABLISHED)
        if fin:
            _set_state(E, C, CF, s, e, p, CLOSED)
            do_close = True
            gen_event = True
        if rst:
            _set_state(E, C, CF, s, e, p, RESET)
            if (e & 1) == 0:
                is_reject = E[p, ST] == ESTABLISHED
            else:
                is_reject = E[p, ST] == SYN_SENT or E[p, ST] == SYN_ACK_SENT
            do_close = True
            gen_event = not is_reject
        if E[e, ST] == INACTIVE:
            if (e & 1) == 1 and plen == 0 and E[2 * s, ST] == SYN_SENT:
                pass
            elif has_ack and E[p, ST] == ESTABLISHED:
                _set_state(E, C, CF, s, e, p, ESTABLISHED)
                C[s, C_PARTIAL] = 0
                C[s, C_FPS] |= 1 if (e & 1) == 0 else 2
            else:
                _set_state(E, C, CF, s, e, p, PARTIAL)
    elif st == SYN_SENT or st == SYN_ACK_SENT:
        if fin:
            _set_state(E, C, CF, s, e, p, CLOSED)
            do_close = True
            gen_event = True
        if rst:
            _set_state(E, C, CF, s, e, p, RESET)
            C[s, C_ACTIVE] = 0
            do_close = True
    elif st == ESTABLISHED or st == PARTIAL:
        if syn and st == PARTIAL and E[p, ST] == INACTIVE and not has_ack:
            _set_state(E, C, CF, s, e, p, SYN_SENT)
        if fin and not rst:
            _set_state(E, C, CF, s, e, p, CLOSED)
            if E[p, ST] == RESET and E[p, PST] == CLOSED:
                _set_state(E, C, CF, s, p, e, CLOSED)
            do_close = True
            gen_event = True
        if rst:
            _set_state(E, C, CF, s, e, p, RESET)
            do_close = True
            if E[p, ST] != RESET or E[p, PST] != ESTABLISHED:
                C[s, C_ACTIVE] = 0
    elif st == CLOSED:
        if rst and E[p, ST] != CLOSED:
            _set_state(E, C, CF, s, e, p, RESET)
            if not E[e, DCL]:
                do_close = True
            _add_timer(C, CF, TT, TK, NT, s, t + TCP_RESET_DELAY, T_RESET)

    if has_ack:
        _ack_received(E, BS, BE, C, H, s, p, rel_ack)

    if plen > 0 and not rst and not underflow:
        E[e, DPK] += 1
        if caplen >= plen:
            _data_sent(E, BS, BE, e, rel_seq + 1 if syn else rel_seq, plen)

    if do_close:
        _connection_closed(E, C, CF, TT, TK, NT, s, e, p, gen_event)

    C[s, C_FPS] |= 1 if is_orig else 2


@njit(cache=True)
def _new_conn(E, BS, BE, C, CF, TT, TK, NT, H, s, idx, u, t, frame, src_first):
    for f in range(N_EFIELDS):
        E[2 * s, f] = 0
        E[2 * s + 1, f] = 0
    for e in (2 * s, 2 * s + 1):
        E[e, RXT] = 1
        E[e, W0T] = 1
        E[e, GPT] = 1
        E[e, REA] = 1
        E[e, TRIM] = 1
        E[e, ACKS] = -1
        E[e, WINS] = -1
    for f in range(N_CFIELDS):
        C[s, f] = 0
    C[s, C_IDX] = idx
    C[s, C_ACTIVE] = 1
    C[s, C_FFRAME] = frame
    C[s, C_LFRAME] = frame
    C[s, C_OFIRST] = src_first
    C[s, C_UOF] = u
    C[s, C_LIVE] = 1
    CF[s, F_START] = t
    CF[s, F_LAST] = t
    CF[s, F_INACT] = UDP_INACTIVITY_TIMEOUT
    CF[s, F_PREV] = t
    TT[s, 0] = t + TCP_SYN_TIMEOUT
    TK[s, 0] = T_EXPIRE
    NT[s] = 1
    CF[s, F_NEXTT] = t + TCP_SYN_TIMEOUT


@njit(cache=True)
def run_chunk(
    E, BS, BE, C, CF, TT, TK, NT, H, K, ukey,
    inv, src_first, ts, frame, flags, seqs, acks, plens, caplens, windows, opts, sports, dports,
    slot_of_u, free, nfree, next_idx, cid, ordn, anchor, fin_slots, new_slots, SN, SPREV,
    conn_first_rst, anchor_data_pkts, start, nfin, nnew, nsn,
):  # fmt: skip
    """Feed rows start.. of one chunk; stops early when no free slot is left for a new connection.
    Returns (next row, nfree, next_idx, n_finalised, n_new, n_snapshots)."""
    for i in range(start, len(inv)):
        u = inv[i]
        s = slot_of_u[u]
        t = ts[i]
        fl = flags[i]
        seq = seqs[i]
        if s >= 0:
            gone = False
            if t >= CF[s, F_NEXTT] or t - CF[s, F_LAST] >= CF[s, F_INACT]:
                gone = _expired_by(E, C, CF, TT, TK, NT, s, t)
            if not gone and fl & SYN_F:
                gone = _is_reuse(E, s, fl, seq)
            if gone:
                C[s, C_LIVE] = 0
                fin_slots[nfin] = s
                nfin += 1
                s = -1
        sf = src_first[i]
        if s < 0:
            if nfree == 0:
                if slot_of_u[u] >= 0 and C[slot_of_u[u], C_LIVE] == 0:
                    slot_of_u[u] = -1
                return i, nfree, next_idx, nfin, nnew, nsn
            nfree -= 1
            s = free[nfree]
            _new_conn(E, BS, BE, C, CF, TT, TK, NT, H, s, next_idx, u, t, frame[i], sf)
            for f in range(6):
                K[s, f] = ukey[u, f]
            next_idx += 1
            new_slots[nnew] = s
            nnew += 1
            slot_of_u[u] = s
            sp = sports[i]
            dp = dports[i]
            flip = False
            if fl & SYN_F and not fl & ACK_F:
                flip = False
            elif fl & SYN_F:
                flip = True
            elif LIKELY[sp]:
                flip = sp < dp if LIKELY[dp] else True
            if flip:
                _flip(E, BS, BE, C, H, s)
        is_orig = sf == C[s, C_OFIRST]
        e = 2 * s + (0 if is_orig else 1)
        plen = plens[i]
        if fl & (SYN_F | RST_F):
            if fl & SYN_F:
                E[e, WSC] = 1 if opts[i] & 0x02 else 0
                anchor[i] = True
            if fl & RST_F:
                p = e ^ 1
                idx = C[s, C_IDX]
                if conn_first_rst[idx] < 0:
                    conn_first_rst[idx] = C[s, C_NPK]
                C[s, C_RSTN] += 1
                SN[nsn, S_ROW] = i
                SN[nsn, S_IDX] = idx
                SN[nsn, S_SLOT] = s
                SN[nsn, S_ORD] = C[s, C_NPK]
                SN[nsn, S_SIDE] = e & 1
                SN[nsn, S_FLIPS] = C[s, C_FLIPS]
                SN[nsn, S_SST] = E[e, ST]
                SN[nsn, S_RST] = E[p, ST]
                SN[nsn, S_SNEXT] = E[e, LSEQ] if E[e, ST] != INACTIVE else -1
                SN[nsn, S_RNEXT] = E[p, LSEQ] if E[p, ST] != INACTIVE else -1
                SN[nsn, S_RACK] = E[p, ACKS]
                SN[nsn, S_RWIN] = E[p, WINS]
                SN[nsn, S_WSCALED] = 1 if (E[e, WSC] and E[p, WSC]) else 0
                SN[nsn, S_HLEN] = C[s, C_HLEN]
                SPREV[nsn] = CF[s, F_PREV] if C[s, C_NPK] else np.nan
                nsn += 1
        elif plen and E[e, DPK] < anchor_data_pkts:
            anchor[i] = True
        _packet(
            E, BS, BE, C, CF, TT, TK, NT, H, s, is_orig, t, fl, seq, acks[i], plen, caplens[i], windows[i]
        )
        cid[i] = C[s, C_IDX]
        ordn[i] = C[s, C_NPK]
        C[s, C_NPK] += 1
        C[s, C_LFRAME] = frame[i]
        CF[s, F_PREV] = t
    return len(inv), nfree, next_idx, nfin, nnew, nsn


@njit(cache=True)
def sweep(E, C, CF, TT, TK, NT, live_slots, now, out):
    """Slots (of live_slots) Zeek's timers remove by `now`; returns how many were written to out."""
    n = 0
    for s in live_slots:
        if now >= CF[s, F_NEXTT] or now - CF[s, F_LAST] >= CF[s, F_INACT]:
            if _expired_by(E, C, CF, TT, TK, NT, s, now):
                C[s, C_LIVE] = 0
                out[n] = s
                n += 1
    return n


class FastTracker:
    """The compiled engine behind resetlens.tcp.tracker.VantageTracker's interface.

    Live connections are found by the 64-bit flow hash (sorted arrays + searchsorted) and confirmed
    against the slot's exact key; a hash collision between two live 4-tuples (odds ~1e-19 per pair)
    makes the older one end early rather than mixing their packets.
    """

    def __init__(self, base) -> None:  # base: VantageTracker, for retention, anchors and output
        self.base = base
        self.st = State()
        self.live_h = np.zeros(0, dtype=np.uint64)  # flow hashes of live connections, sorted
        self.live_s = np.zeros(0, dtype=np.int64)  # their slots
        self.orphans: list[int] = []  # live slots displaced by a hash collision (ended at finish)
        self.next_idx = 0
        self.first_rst = np.full(1024, -1, dtype=np.int64)
        self.total = np.zeros(1024, dtype=np.int64)
        self.dead = np.zeros(1024, dtype=np.bool_)
        self.rows: dict[int, object] = {}
        self.pending_snaps: dict[int, list[tuple[object, int, int]]] = {}
        self.hist_cache: dict[bytes, str] = {}
        self.addr_cache: dict[int, str] = {}

    def _ensure_idx(self, need: int) -> None:
        if need <= len(self.first_rst):
            return
        size = max(need, 2 * len(self.first_rst))
        add = size - len(self.first_rst)
        self.first_rst = np.concatenate([self.first_rst, np.full(add, -1, dtype=np.int64)])
        self.total = np.concatenate([self.total, np.zeros(add, dtype=np.int64)])
        self.dead = np.concatenate([self.dead, np.zeros(add, dtype=np.bool_)])

    def _lookup(self, uh: np.ndarray, ukey: np.ndarray) -> np.ndarray:
        """Live slot of each distinct key of the chunk, or -1."""
        out = np.full(len(uh), -1, dtype=np.int64)
        if len(self.live_h) == 0 or len(uh) == 0:
            return out
        pos = np.minimum(np.searchsorted(self.live_h, uh), len(self.live_h) - 1)
        hit = self.live_h[pos] == uh
        cand = self.live_s[pos]
        exact = hit & (self.st.K[cand] == ukey).all(axis=1)
        out[exact] = cand[exact]
        self.orphans.extend(cand[hit & ~exact].tolist())
        return out

    def feed(self, table: np.ndarray) -> None:
        from resetlens.tcp.tracker import ANCHOR_DATA_PKTS, RstSnapshot

        base = self.base
        n = len(table)
        st = self.st
        uh, ukey, inv, first = hash_keys(table)
        slot_of_u = self._lookup(uh, ukey)
        self._ensure_idx(self.next_idx + n)
        cid = np.empty(n, dtype=np.int32)
        ordn = np.empty(n, dtype=np.int32)
        anchor = np.zeros(n, dtype=np.bool_)
        fin_slots = np.empty(n, dtype=np.int64)
        new_slots = np.empty(n, dtype=np.int64)
        flags = table["flags"].astype(np.int64)
        n_rst = int(np.count_nonzero(flags & RST_F))
        SN = np.empty((max(n_rst, 1), N_SFIELDS), dtype=np.int64)
        SPREV = np.empty(max(n_rst, 1), dtype=np.float64)
        cols = (
            inv, first.astype(np.int64), table["ts"].astype(np.float64), table["frame"].astype(np.int64), flags,
            table["seq"].astype(np.int64), table["ack"].astype(np.int64), table["payload_len"].astype(np.int64),
            table["captured_len"].astype(np.int64), table["window"].astype(np.int64), table["opts"].astype(np.int64),
            table["sport"].astype(np.int64), table["dport"].astype(np.int64),
        )  # fmt: skip
        pos = nfin = nnew = nsn = 0
        while pos < n:
            if not st.free:
                st.grow(max(1024, st.cap // 2))
            free = np.array(st.free, dtype=np.int64)
            pos, nfree, self.next_idx, nfin, nnew, nsn = run_chunk(
                st.E, st.BS, st.BE, st.C, st.CF, st.TT, st.TK, st.NT, st.H, st.K, ukey, *cols,
                slot_of_u, free, len(free), self.next_idx, cid, ordn, anchor, fin_slots, new_slots, SN, SPREV,
                self.first_rst, ANCHOR_DATA_PKTS, pos, nfin, nnew, nsn,
            )  # fmt: skip
            st.free = free[:nfree].tolist()
        # the chunk's keys now map to their latest connections
        keep = ~np.isin(self.live_h, uh)
        live_h = np.concatenate([self.live_h[keep], uh])
        live_s = np.concatenate([self.live_s[keep], slot_of_u])
        order = np.argsort(live_h, kind="stable")
        self.live_h, self.live_s = live_h[order], live_s[order]
        for j in range(nsn):
            s = int(SN[j, S_SLOT])
            row = table[int(SN[j, S_ROW])]
            hlen = int(SN[j, S_HLEN])
            snap = RstSnapshot(
                conn_idx=int(SN[j, S_IDX]),
                row=row.copy(),
                ordinal=int(SN[j, S_ORD]),
                sender_state=int(SN[j, S_SST]),
                receiver_state=int(SN[j, S_RST]),
                sender_next_seq=None if SN[j, S_SNEXT] < 0 else int(SN[j, S_SNEXT]),
                receiver_next_seq=None if SN[j, S_RNEXT] < 0 else int(SN[j, S_RNEXT]),
                receiver_ack=None if SN[j, S_RACK] < 0 else int(SN[j, S_RACK]),
                receiver_window=None if SN[j, S_RWIN] < 0 else int(SN[j, S_RWIN]),
                window_scaled=bool(SN[j, S_WSCALED]),
                prev_ts=None if np.isnan(SPREV[j]) else float(SPREV[j]),
                history_before=bytes(st.H[s, :hlen]).decode("ascii"),
            )
            base.snapshots.append(snap)
            self.pending_snaps.setdefault(s, []).append((snap, int(SN[j, S_SIDE]), int(SN[j, S_FLIPS])))
        self._finalise(fin_slots[:nfin])
        out = np.empty(len(self.live_s), dtype=np.int64)
        now = float(table["ts"][-1])
        k = sweep(st.E, st.C, st.CF, st.TT, st.TK, st.NT, self.live_s, now, out)
        if k:
            gone = ~np.isin(self.live_s, out[:k])
            self.live_h, self.live_s = self.live_h[gone], self.live_s[gone]
            self._finalise(out[:k])
        base.pending.append((table, cid, ordn))
        base.pending_rows += n
        base._add_anchors(table[anchor])
        if base.pending_rows >= base.compact_at:
            base._compact()

    def _addrs(self, hi: np.ndarray, lo: np.ndarray) -> list[str]:
        """Address text per element (each distinct address formatted once)."""
        from resetlens.tcp.resets import addr_text

        cache = self.addr_cache
        if len(hi) and not hi.any() and ((lo >> np.uint64(32)) == np.uint64(0xFFFF)).all():
            uniq, inv = np.unique(lo, return_inverse=True)
            texts = []
            for v in uniq.tolist():
                t = cache.get(v)
                if t is None:
                    if len(cache) > 200_000:
                        cache.clear()
                    t = cache[v] = f"{(v >> 24) & 255}.{(v >> 16) & 255}.{(v >> 8) & 255}.{v & 255}"
                texts.append(t)
            return [texts[j] for j in inv.tolist()]
        return [addr_text(h, v) for h, v in zip(hi.tolist(), lo.tolist(), strict=True)]

    def _finalise(self, slots: np.ndarray) -> None:
        """Turn ended slots into Connection rows (vectorised) and free them."""
        if len(slots) == 0:
            return
        from resetlens.model import Connection

        st = self.st
        base = self.base
        arr = np.asarray(slots, dtype=np.int64)
        vi = np.empty((12, len(arr)), dtype=np.int64)
        vf = np.empty((2, len(arr)), dtype=np.float64)
        final_values(st.E, st.C, st.CF, st.H, arr, vi, vf)
        k = st.K[arr]
        of = vi[8] != 0
        o_h = self._addrs(np.where(of, k[:, 0], k[:, 3]), np.where(of, k[:, 1], k[:, 4]))
        r_h = self._addrs(np.where(of, k[:, 3], k[:, 0]), np.where(of, k[:, 4], k[:, 1]))
        o_p = np.where(of, k[:, 2], k[:, 5]).tolist()
        r_p = np.where(of, k[:, 5], k[:, 2]).tolist()
        hist_rows = st.H[arr]
        hist_cache = self.hist_cache
        vantage = base.vantage
        rows = self.rows
        pending = self.pending_snaps
        cols = zip(
            arr.tolist(), vi[0].tolist(), vi[1].tolist(), vi[2].tolist(), vi[3].tolist(), vi[4].tolist(),
            vi[5].tolist(), vi[6].tolist(), vi[7].tolist(), vi[9].tolist(), vi[10].tolist(),
            vf[0].tolist(), vf[1].tolist(), o_h, o_p, r_h, r_p, strict=True,
        )  # fmt: skip
        for j, (
            s,
            idx,
            code,
            ob,
            rb,
            opk,
            rpk,
            ff,
            lf,
            hlen,
            flips,
            start,
            last,
            oh,
            op,
            rh,
            rp,
        ) in enumerate(cols):
            hb = hist_rows[j, :hlen].tobytes()
            history = hist_cache.get(hb)
            if history is None:
                history = hist_cache[hb] = hb.decode("ascii")
            rows[idx] = Connection(
                vantage=vantage,
                ts=start,
                orig_h=oh,
                orig_p=op,
                resp_h=rh,
                resp_p=rp,
                conn_state=STATE_CODES[code],
                history=history,
                duration=last - start,
                orig_bytes=ob,
                resp_bytes=rb,
                uid=f"C{idx + 1}@{vantage}",
                orig_pkts=opk,
                resp_pkts=rpk,
                first_frame=ff,
                last_frame=lf,
            )
            if s in pending:
                for snap, side, flips_then in pending.pop(s):
                    snap.sent_by_orig = (side == 0) != ((flips - flips_then) % 2 == 1)
        self.total[vi[0]] = vi[11]
        self.dead[vi[0]] = True
        st.free.extend(arr.tolist())

    def conn_arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        n = self.next_idx
        total = self.total[:n].copy()
        live = self.live_s
        if len(live):
            total[self.st.C[live, C_IDX]] = self.st.C[live, C_NPK]
        return total, self.first_rst[:n].copy(), self.dead[:n].copy()

    def finish(self) -> list:
        ends = np.unique(np.concatenate([self.live_s, np.array(self.orphans, dtype=np.int64)]))
        ends = ends[self.st.C[ends, C_LIVE] == 1] if len(ends) else ends
        self._finalise(ends)
        self.live_h = np.zeros(0, dtype=np.uint64)
        self.live_s = np.zeros(0, dtype=np.int64)
        return [self.rows[i] for i in sorted(self.rows)]


def hash_keys(table: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The chunk's distinct 4-tuples: (flow hashes, exact keys [U, 6], each row's index into them, per row
    whether src is the key's lower endpoint). Exact even if two tuples of the chunk share a hash."""
    from resetlens.capture.table import flow_key

    sh, sl, sp = table["src_hi"], table["src_lo"], table["sport"].astype(np.uint64)
    dh, dl, dp = table["dst_hi"], table["dst_lo"], table["dport"].astype(np.uint64)
    first = (sh < dh) | ((sh == dh) & ((sl < dl) | ((sl == dl) & (sp <= dp))))
    key = np.empty((len(table), 6), dtype=np.uint64)
    key[:, 0] = np.where(first, sh, dh)
    key[:, 1] = np.where(first, sl, dl)
    key[:, 2] = np.where(first, sp, dp)
    key[:, 3] = np.where(first, dh, sh)
    key[:, 4] = np.where(first, dl, sl)
    key[:, 5] = np.where(first, dp, sp)
    fk = flow_key(table)
    uh, idx, inv = np.unique(fk, return_index=True, return_inverse=True)
    ukey = key[idx]
    if not (key == ukey[inv]).all():  # two tuples of this chunk share a hash: group by the exact key
        ukey, idx, inv = np.unique(key, axis=0, return_index=True, return_inverse=True)
        uh = fk[idx]
    return uh, np.ascontiguousarray(ukey), inv.reshape(-1).astype(np.int64), first


STATE_CODES = ("S0", "S1", "SF", "REJ", "S2", "S3", "RSTO", "RSTR", "RSTOS0", "RSTRH", "SH", "SHR", "OTH")


@njit(cache=True)
def _rstos0(H, s, n):
    """Zeek's /^\\^?S[^HAFGIQ]*R.*/ on the history bytes of slot s."""
    i = 0
    if i < n and H[s, i] == 94:
        i += 1
    if i >= n or H[s, i] != 83:
        return False
    i += 1
    while i < n:
        ch = H[s, i]
        if ch == 82:
            return True
        if ch == 72 or ch == 65 or ch == 70 or ch == 71 or ch == 73 or ch == 81:
            return False
        i += 1
    return False


@njit(cache=True)
def _state_code(E, H, C, s):
    o = 2 * s
    r = o + 1
    os_ = E[o, ST]
    rs = E[r, ST]
    o_inactive = os_ == INACTIVE or os_ == PARTIAL
    r_inactive = rs == INACTIVE or rs == PARTIAL
    if rs == RESET:
        if (
            os_ == SYN_SENT
            or os_ == SYN_ACK_SENT
            or (os_ == RESET and _size(E, o, r) == 0 and _size(E, r, o) == 0)
        ):
            return 3
        return 9 if o_inactive else 7
    if os_ == RESET:
        if r_inactive:
            return 8 if _rstos0(H, s, C[s, C_HLEN]) else 12
        return 6
    if rs == CLOSED and os_ == CLOSED:
        return 2
    if os_ == CLOSED:
        return 10 if r_inactive else 4
    if rs == CLOSED:
        return 11 if o_inactive else 5
    if os_ == SYN_SENT and rs == INACTIVE:
        return 0
    if os_ == ESTABLISHED and rs == ESTABLISHED:
        return 1
    return 12


@njit(cache=True)
def final_values(E, C, CF, H, slots, out_i, out_f):
    """Per slot: idx, state code, orig/resp bytes, orig/resp pkts, first/last frame, orig-first, history
    length, flips, packets (out_i rows) and start, last time (out_f rows)."""
    for j in range(len(slots)):
        s = slots[j]
        o = 2 * s
        out_i[0, j] = C[s, C_IDX]
        out_i[1, j] = _state_code(E, H, C, s)
        out_i[2, j] = _size(E, o, o + 1)
        out_i[3, j] = _size(E, o + 1, o)
        out_i[4, j] = E[o, PKTS]
        out_i[5, j] = E[o + 1, PKTS]
        out_i[6, j] = C[s, C_FFRAME]
        out_i[7, j] = C[s, C_LFRAME]
        out_i[8, j] = C[s, C_OFIRST]
        out_i[9, j] = C[s, C_HLEN]
        out_i[10, j] = C[s, C_FLIPS]
        out_i[11, j] = C[s, C_NPK]
        C[s, C_LIVE] = 0
        out_f[0, j] = CF[s, F_START]
        out_f[1, j] = CF[s, F_LAST]
