"""The catalog of reset causes and evidence, read by analysis and reports alike.

Modelled on pyflakes' messages.py: each cause and each kind of evidence is a tiny class with a
code and message templates. Templates are filled with `str.format_map` over the facts of one
reset; a missing fact renders as "?" rather than failing, so a report never crashes on a gap.
"""

from __future__ import annotations

from typing import Any, ClassVar


class _Facts(dict):
    """format_map mapping that shows '?' for facts a verdict does not have."""

    def __missing__(self, key: str) -> str:
        return "?"


def fill(template: str, facts: dict[str, Any]) -> str:
    return template.format_map(_Facts(facts))


def _with_defaults(cls: type, facts: dict[str, Any]) -> dict[str, Any]:
    """Facts plus the cause's own defaults (e.g. its standard advice) where the engine gave none."""
    merged = dict(facts)
    if "advice" not in merged and hasattr(cls, "advice"):
        merged["advice"] = cls.advice
    return merged


# ---------------------------------------------------------------------------------------------
# Causes (contract §3 cause codes)
# ---------------------------------------------------------------------------------------------


class Cause:
    code: ClassVar[str]
    title: ClassVar[str]
    explanation: ClassVar[str]  # why the reset happened, filled with the reset's facts
    decision: ClassVar[str]  # what to fix, one or two sentences
    owner: ClassVar[str]  # who usually acts: app, proxy, client, network

    @classmethod
    def explain(cls, facts: dict[str, Any]) -> str:
        return fill(cls.explanation, _with_defaults(cls, facts))

    @classmethod
    def decide(cls, facts: dict[str, Any]) -> str:
        return fill(cls.decision, _with_defaults(cls, facts))


class NoListener(Cause):
    code = "no_listener"
    title = "No listener"
    explanation = (
        "{receiver} had no socket for {dst}:{dport}: the SYN or segment from {peer} was answered by "
        "{sender_host}'s kernel with a reset (the port was closed, the process dead or not yet listening)."
    )
    decision = (
        "Fix the application lifecycle or listener on {sender_host}: make sure {service} listens on "
        "port {sport} before traffic is sent (readiness checks, drain before restart), or point clients at "
        "the right port."
    )
    owner = "app"


class AbortiveClose(Cause):
    code = "abortive_close"
    title = "Abortive close"
    explanation = (
        "A program on {sender_host} closed an established connection abortively ({how}): the kernel "
        "sent RST instead of FIN."
    )
    decision = "Fix the application on {sender_host}: {advice}"
    owner = "app"
    # The default advice; the engine replaces it when the story says otherwise (e.g. nothing was lost).
    advice = (
        "read the whole request before closing, do not set SO_LINGER 0, and close gracefully (shutdown, "
        "then close) unless aborting is intended."
    )
    advice_after_exchange = (
        "it resets connections after a complete exchange (SO_LINGER 0 on close, such as HAProxy's `option "
        "nolinger` or its close of server connections it will not reuse): no data was lost, but the peer "
        "logs ECONNRESET; close with FIN if that noise misleads people."
    )


class StaleReuse(Cause):
    code = "stale_reuse"
    title = "Stale keep-alive reuse"
    explanation = (
        "{peer} sent a request on a pooled connection that {sender_host} had already closed after "
        "{idle} idle; {sender_host}'s stack answered with a reset (keep-alive reuse race)."
    )
    decision = (
        "Make the client's keep-alive idle timeout shorter than the server's ({sender_host}), or make the "
        "server's idle timeout longer than every client/proxy pool in front of it; retry idempotent "
        "requests on a reset of a reused connection."
    )
    owner = "client"


class StateLost(Cause):
    code = "state_lost"
    title = "Connection state lost"
    explanation = (
        "{sender_host} no longer had state for this connection ({how}) and answered a segment of it "
        "with a reset."
    )
    decision = (
        "Fix the state loss: keep conntrack/NAT entries longer than the application's idle periods "
        "(or enable TCP keepalives below that timeout), and drain connections before restarting "
        "{sender_host}."
    )
    owner = "network"


class Timeout(Cause):
    code = "timeout"
    title = "Timeout enforced by reset"
    explanation = (
        "{sender_host} ({sender_role}) enforced a request or idle timeout after {idle} and reset the "
        "connection."
    )
    decision = (
        "Fix the timeout policy on {sender_host}: align its timeout ({knob}) with how long the "
        "upstream really needs, or make the slow side faster; clients should retry with backoff."
    )
    owner = "proxy"


class PolicyReject(Cause):
    code = "policy_reject"
    title = "Rejected by policy"
    explanation = "A rule on {sender_host} rejected the connection with a reset ({how})."
    decision = (
        "Review the firewall/WAF/proxy policy on {sender_host} ({rule}): raise the limit or exempt this "
        "traffic if it is legitimate, otherwise the reset is the policy working as intended."
    )
    owner = "network"


class TlsHandshake(Cause):
    code = "tls_handshake"
    title = "Reset during the TLS handshake"
    explanation = (
        "{sender_host} reset the connection during the TLS handshake, right after the {trigger} ({how})."
    )
    decision = (
        "Fix the TLS setup between {peer} and {sender_host}: send SNI for a name the server serves, "
        "speak TLS only to TLS ports, and align protocol versions and ciphers."
    )
    owner = "client"


class BacklogOverflow(Cause):
    code = "backlog_overflow"
    title = "Accept queue overflow"
    explanation = (
        "{sender_host}'s accept queue for port {sport} was full and tcp_abort_on_overflow=1, so the "
        "kernel reset the connection right after the handshake."
    )
    decision = (
        "Fix capacity on {sender_host}: accept faster (more workers), raise the listen backlog and "
        "net.core.somaxconn, or turn tcp_abort_on_overflow off so clients retry instead of failing."
    )
    owner = "app"


class Unknown(Cause):
    code = "unknown"
    title = "Cause not decided"
    explanation = "The evidence does not decide why this reset was sent: {missing}."
    decision = "Collect what is missing ({missing}) and re-run the analysis before acting."
    owner = "unknown"


CAUSES: dict[str, type[Cause]] = {
    c.code: c
    for c in (
        NoListener,
        AbortiveClose,
        StaleReuse,
        StateLost,
        Timeout,
        PolicyReject,
        TlsHandshake,
        BacklogOverflow,
        Unknown,
    )
}


def cause(code: str) -> type[Cause]:
    return CAUSES.get(code, Unknown)


# ---------------------------------------------------------------------------------------------
# Evidence kinds: each fact the blame engine can cite. The code goes into the JSON.
# ---------------------------------------------------------------------------------------------


class EvidenceKind:
    code: ClassVar[str]
    template: ClassVar[str]

    @classmethod
    def text(cls, facts: dict[str, Any]) -> str:
        return fill(cls.template, facts)


EVIDENCE: dict[str, type[EvidenceKind]] = {}


def evidence_kind(code: str, template: str) -> type[EvidenceKind]:
    """Declare an evidence kind; the blame engine and reports look them up by code."""
    kind = type(code, (EvidenceKind,), {"code": code, "template": template})
    EVIDENCE[code] = kind
    return kind


def evidence_text(code: str, facts: dict[str, Any]) -> str:
    kind = EVIDENCE.get(code)
    return kind.text(facts) if kind else fill(str(facts.get("text", code)), facts)


# Where the reset came from (origin).
SEEN_LEAVING_SENDER = evidence_kind(
    "seen_leaving_sender", "Captured at {vantage} on {host} itself (frame {frame}): {host} sent it."
)
ABSENT_AT_SENDER = evidence_kind(
    "absent_at_sender",
    "Not in {host}'s own capture ({vantage}), which holds this connection at that moment: {host} did not send it.",
)
SENDER_CAPTURE_GAP = evidence_kind(
    "sender_capture_gap", "{host}'s own capture ({vantage}) does not cover this moment or this connection."
)
LOCALLY_GENERATED = evidence_kind(
    "locally_generated",
    "On {host}'s `-i any` capture ({vantage}) the RST appears only as outgoing (frame {frame}), never arriving: "
    "{host} generated it.",
)
FORWARDED = evidence_kind(
    "forwarded",
    "{host}'s capture ({vantage}) shows it arriving and leaving again (frames {frames}): {host} forwarded it.",
)
TTL_MATCHES = evidence_kind(
    "ttl_matches",
    "TTL {ttl} at {vantage} equals that of {claimed}'s earlier packets there: consistent with {claimed}.",
)
TTL_ADDRESS_MISMATCH = evidence_kind(
    "ttl_address_mismatch",
    "TTL {ttl} at {vantage}, but {claimed}'s other packets in this capture arrive with TTL {baseline}: the RST "
    "entered the path {hops} hop(s) {where} {claimed}.",
)
SAME_DEVICE = evidence_kind(
    "same_device_ipid",
    "{other} claims another source ({other_src}) yet carries the next IP IDs ({ids}) with the same TTL {ttl}: "
    "one device sent both.",
)
OTHER_LEG = evidence_kind(
    "other_leg",
    "Proxy {proxy} carried this on two legs: this {this} leg pairs with the {other} leg {desc}, opened "
    "{ms} ms after the client's.",
)
IPID_CONTINUES = evidence_kind(
    "ipid_continues",
    "IP ID {ip_id} continues {claimed}'s own counter ({prev} on its previous packet): the same stack sent it.",
)
IPID_ZERO = evidence_kind(
    "ipid_zero",
    "IP ID 0 where {claimed}'s packets count upwards: a stateless reply (a kernel answering for no socket, or a "
    "firewall's reject).",
)
STACK_FINGERPRINT = evidence_kind("stack_fingerprint", "{what}")
FOLLOW_UP = evidence_kind(
    "follow_up_reset",
    "{sender} had already reset this connection ({first}); this RST answers {peer}'s later segment, so it shares "
    "that reset's cause.",
)
TTL_MISMATCH = evidence_kind(
    "ttl_mismatch",
    "TTL {ttl} at {vantage}, but earlier packets from {claimed} in this connection arrive there with TTL "
    "{baseline}: the RST entered the path {hops} hop(s) {where} {claimed}.",
)
DATA_AFTER_RST = evidence_kind(
    "data_after_rst",
    "{claimed} kept sending on this connection after 'its' RST (frames {frames} at {vantage}): it never reset it "
    "(Weaver et al. race).",
)
RST_SEQ_BURST = evidence_kind(
    "rst_burst_seq_change",
    "{count} RSTs within a second with different sequence numbers: a real stack does not do that; an injector "
    "spraying the window does.",
)
RESERVED_BITS = evidence_kind("reserved_bits", "The RST has reserved TCP header bits set: a crafted packet.")
BOTH_DIRECTIONS = evidence_kind(
    "both_directions_reset",
    "RSTs towards both ends of the connection within {window} ms ({other}): a box in the middle reset both sides.",
)
NAT_MAPPING = evidence_kind(
    "nat_mapping", "Seen as {a} at {va} and as {b} at {vb}: a NAT rewrote the addresses in between."
)
NOT_EFFECTIVE = evidence_kind(
    "not_effective", "This RST could not tear the connection down ({why}); it is not blamed."
)
INJECTOR_FINGERPRINT = evidence_kind("injector_fingerprint", "Header fingerprint {what}.")
ONLY_ONE_SIDE = evidence_kind(
    "missing_sender_capture",
    "No capture from {claimed}'s side: a capture there would show whether it really sent this RST "
    "(two-sided capture rule).",
)

# What the reset answered (the packet story).
ANSWERS_SYN = evidence_kind(
    "answers_syn",
    "It answers the SYN from {peer} (frame {answered}) with RST+ACK, no SYN-ACK: nothing listened on "
    "{dst}:{dport}.",
)
ANSWERS_HANDSHAKE_ACK = evidence_kind(
    "answers_handshake_ack",
    "It answers the handshake's final ACK ({ms} ms after it) before any data: the connection was never accepted.",
)
ANSWERS_SEGMENT_NO_SOCKET = evidence_kind(
    "answers_segment_no_socket",
    "It answers {peer}'s {what} (frame {answered}) with seq = that segment's ack: {sender}'s stack had no socket "
    "for it.",
)
AFTER_SENDER_FIN = evidence_kind(
    "after_sender_fin",
    "{sender} had already closed this connection with FIN; {peer} sent {what} after {idle} idle.",
)
ACTIVE_ABORT = evidence_kind(
    "active_abort",
    "RST+ACK with {sender}'s own next sequence number, not triggered by any segment: a program on {sender} aborted "
    "the connection {when}.",
)
AFTER_IDLE = evidence_kind(
    "after_idle", "Sent after {idle} of silence on the connection (waiting for {waiting})."
)
TLS_HELLO = evidence_kind(
    "after_client_hello", "{peer} opened with a TLS ClientHello (frame {frame}); the RST came {ms} ms later."
)
MID_RESPONSE = evidence_kind("mid_response", "{sender} had sent {bytes} bytes of response before aborting.")
UNREAD_REQUEST = evidence_kind(
    "unread_request", "{peer} had sent {bytes} bytes that {sender} never answered."
)
LOG_LINE = evidence_kind("log_line", "{kind} log ({path}:{line}): {summary}")
HOST_STATE = evidence_kind("host_state", "{host} {what}")
MISSING = evidence_kind("missing", "{what}")
