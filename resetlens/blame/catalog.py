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
        return fill(cls.explanation, facts)

    @classmethod
    def decide(cls, facts: dict[str, Any]) -> str:
        return fill(cls.decision, facts)


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
    decision = (
        "Fix the application on {sender_host}: read the whole request before closing, do not set "
        "SO_LINGER 0, and close gracefully (shutdown, then close) unless aborting is intended."
    )
    owner = "app"


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
    explanation = (
        "A rule on {sender_host} rejected the connection with a reset ({how})."
    )
    decision = (
        "Review the firewall/WAF/proxy policy on {sender_host} ({rule}): raise the limit or exempt this "
        "traffic if it is legitimate, otherwise the reset is the policy working as intended."
    )
    owner = "network"


class TlsHandshake(Cause):
    code = "tls_handshake"
    title = "Reset during the TLS handshake"
    explanation = (
        "{sender_host} reset the connection during the TLS handshake, right after the {trigger} "
        "({how})."
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
