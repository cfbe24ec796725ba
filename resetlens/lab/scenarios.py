"""The scenarios: what each one does to put RSTs on the wire, and the truth label of every reset it causes.

Ports: nginx 80 (plain) and 81 (resets clients itself); HAProxy 8000 (http), 8001 (tcp reject),
8002 (nolinger); backend 8080 (HTTP), 9000 (echo), 9001 (unread), 9002 (sink), 9003 (slow echo),
9100 (stuck listener), 9443 (TLS).
"""

from __future__ import annotations

import signal
import time

from resetlens.lab.runner import Lab
from resetlens.lab.topology import PROXY_FRONT4, PROXY_FRONT6, SERVER4, SERVER6
from resetlens.lab.verify import Expect, both, in_log, leg, on_flow

ERR = "nginx-error"
ACC = "nginx-access"
HAP = "haproxy"
APP = "app"
JRN = "journald-json"


class Scenario:
    name: str = ""
    description: str = ""

    def setup(self, lab: Lab) -> None:
        pass

    def drive(self, lab: Lab) -> None:
        raise NotImplementedError

    def cleanup(self, lab: Lab) -> None:
        pass

    def expects(self) -> list[Expect]:
        raise NotImplementedError


class NoListener(Scenario):
    name = "no_listener"
    description = ("The backend is killed (SIGKILL; the journal shows it); clients connect to its port directly "
                   "over IPv4 and IPv6 and through nginx and HAProxy, then the backend is started again.")  # fmt: skip

    def drive(self, lab: Lab) -> None:
        lab.svc.kill_backend(signal.SIGKILL)
        time.sleep(0.2)
        lab.client("refused", tag="direct4", dst=SERVER4, port=8080, count=2)
        lab.client("refused", tag="direct6", dst=SERVER6, port=8080, count=2)
        lab.client("http", tag="nginx", dst=PROXY_FRONT4, port=80, path="/ok", count=2)
        lab.client("http", tag="haproxy", dst=PROXY_FRONT4, port=8000, path="/ok", count=1)
        lab.svc.start_backend()
        lab.client("http", tag="after-restart", dst=PROXY_FRONT4, port=80, path="/ok", count=1)

    def expects(self) -> list[Expect]:
        kernel = dict(role="server", host="server", kind="kernel", cause="no_listener")
        return [
            Expect("direct SYN refused", match=on_flow("direct4", to="client"), min=2, max=2, **kernel,
                   note="SYN to a port with no socket: the server's kernel answers RST|ACK (IP ID 0).",
                   logs=((JRN, "Main process exited"),)),
            Expect("direct SYN refused (IPv6)", match=on_flow("direct6", to="client"), min=2, max=2, **kernel,
                   note="Same over IPv6.", logs=((JRN, "Main process exited"),)),
            Expect("upstream connect refused", match=leg("server", "proxy", 8080), min=3, **kernel,
                   note="nginx/HAProxy connect to the dead upstream; the server's kernel refuses. The client "
                        "gets 502/503 and a FIN, never this RST.",
                   logs=((ERR, r"connect\(\) failed \(111"), (HAP, r" SC-- "), (JRN, "Main process exited"))),
        ]  # fmt: skip


class AppAbort(Scenario):
    name = "app_abort"
    description = ("The backend aborts with SO_LINGER 0: right after reading the request (/abort) and in the "
                   "middle of a response (/abort-mid), directly and behind nginx and HAProxy.")  # fmt: skip

    def drive(self, lab: Lab) -> None:
        lab.client("http", tag="direct", dst=SERVER4, port=8080, path="/abort", count=2)
        lab.client("http", tag="direct-mid", dst=SERVER4, port=8080, path="/abort-mid", count=1)
        lab.client("http", tag="direct6", dst=SERVER6, port=8080, path="/abort", count=1)
        lab.client("http", tag="nginx", dst=PROXY_FRONT4, port=80, path="/abort", count=1)
        lab.client("http", tag="nginx-mid", dst=PROXY_FRONT4, port=80, path="/abort-mid", count=1)
        lab.client("http", tag="haproxy", dst=PROXY_FRONT4, port=8000, path="/abort", count=1)

    def expects(self) -> list[Expect]:
        app = dict(role="server", host="server", kind="application", cause="abortive_close")
        return [
            Expect("abort after request", match=on_flow("direct", to="client"), min=2, max=2, **app,
                   note="The backend read the request and closed with SO_LINGER 0.",
                   logs=((APP, r"abort \(SO_LINGER 0\) after reading .*peer=10\.77\.1\.2:{port}"),)),
            Expect("abort mid-response", match=on_flow("direct-mid", to="client"), min=1, max=1, **app,
                   note="The backend sent 2000 of 8000 body bytes, then closed with SO_LINGER 0.",
                   logs=((APP, r"abort \(SO_LINGER 0\) mid-response.*peer=10\.77\.1\.2:{port}"),)),
            Expect("abort after request (IPv6)", match=on_flow("direct6", to="client"), min=1, max=1, **app,
                   note="Same over IPv6.", logs=((APP, r"abort .*peer=\[fd00:77:1::2\]:{port}"),)),
            Expect("abort towards proxy", match=leg("server", "proxy", 8080), min=3, max=3, **app,
                   note="The backend aborts the proxy's upstream connection; nginx answers the client 502 + FIN "
                        "(mid-response: truncated body + FIN), HAProxy 502 (SH--). Neither forwards the RST.",
                   logs=((ERR, r"\(104: Connection reset by peer\)"), (APP, r"abort .*peer=10\.77\.3\.1:{port}"),
                         (HAP, r" SH-- "))),
        ]  # fmt: skip


class UnreadData(Scenario):
    name = "unread_data"
    description = ("close() with unread data in the receive queue: the backend reads a 5-byte header and closes "
                   "while the client's message is still queued; and the client closes with the echo unread.")  # fmt: skip

    def drive(self, lab: Lab) -> None:
        lab.client("unread", tag="server-unread", dst=SERVER4, port=9001, side="server")
        lab.client("unread", tag="server-unread", dst=SERVER4, port=9001, side="server")
        lab.client("unread", tag="server-unread6", dst=SERVER6, port=9001, side="server")
        lab.client("unread", tag="client-unread", dst=SERVER4, port=9000, side="client")

    def expects(self) -> list[Expect]:
        server = dict(role="server", host="server", kind="application", cause="abortive_close")
        return [
            Expect("server closes with unread data", match=on_flow("server-unread", to="client"), min=2, max=2,
                   **server, note="The backend closed with 300 unread bytes queued: Linux sends RST instead of FIN "
                                  "(TCPAbortOnClose).",
                   logs=((APP, r"unread: closing with unread data.*peer=10\.77\.1\.2:{port}"),)),
            Expect("server closes with unread data (IPv6)", match=on_flow("server-unread6", to="client"), min=1,
                   max=1, **server, note="Same over IPv6.", logs=((APP, r"unread: .*peer=\[fd00:77:1::2\]:{port}"),)),
            Expect("client closes with unread data", match=on_flow("client-unread", to="peer"), min=1, max=1,
                   role="client", host="client", kind="application", cause="abortive_close",
                   note="The client closed with the server's echo unread in its receive queue."),
        ]  # fmt: skip


class BacklogOverflow(Scenario):
    name = "backlog_overflow"
    description = ("tcp_abort_on_overflow=1 on the server and a listener (backlog 4) that never accepts: five "
                   "connections fill the accept queue, three earlier IPv6 SYNs whose SYN-ACKs the firewall held "
                   "back then complete into the full queue and are reset.")  # fmt: skip

    def setup(self, lab: Lab) -> None:
        lab.sysctl("server", "net.ipv4.tcp_abort_on_overflow", "1")
        lab.sysctl("server", "net.ipv4.tcp_syncookies", "0")
        lab.spawn("stuck", "server", "resetlens.lab.backend", "--stuck")
        from resetlens.lab.services import wait_port

        wait_port(lab.topo, "server", SERVER4, 9100)
        lab.nft("firewall", HOLD_SYNACK6)

    def drive(self, lab: Lab) -> None:
        c = lab.client_start("backlog", tag="late", dst4=SERVER4, dst6=SERVER6, port=9100)
        c.wait_ready("accept-queue-full")
        lab.nft_drop_table("firewall", "inet scenario")
        lab.mark("released")
        c.go()
        c.finish()

    def cleanup(self, lab: Lab) -> None:
        lab.nft_drop_table("firewall", "inet scenario")
        lab.procs.stop("stuck")
        lab.sysctl("server", "net.ipv4.tcp_abort_on_overflow", "0")
        lab.sysctl("server", "net.ipv4.tcp_syncookies", "1")

    def expects(self) -> list[Expect]:
        return [
            Expect("accept queue overflow", match=on_flow("late", to="client"), min=1, max=6, role="server",
                   host="server", kind="kernel", cause="backlog_overflow",
                   note="The handshake's final ACK found the accept queue full; with tcp_abort_on_overflow=1 the "
                        "kernel resets instead of dropping (nstat: TcpExtListenOverflows). Each late handshake is "
                        "reset twice: the client ACKs both the SYN-ACK answering its retransmitted SYN and the "
                        "server's own SYN-ACK retransmission."),
        ]  # fmt: skip


HOLD_SYNACK6 = """
table inet scenario {
    chain forward {
        type filter hook forward priority 0; policy accept;
        meta nfproto ipv6 tcp sport 9100 tcp flags & (syn | ack) == syn | ack counter drop
    }
}
"""


class ClientAbort(Scenario):
    name = "client_abort"
    description = ("The client sends a request for a slow (800 ms) response and aborts after 200 ms with "
                   "SO_LINGER 0: directly, through nginx (499) and through HAProxy (CD/CH).")  # fmt: skip

    def drive(self, lab: Lab) -> None:
        lab.client("http", tag="direct", dst=SERVER4, port=8080, path="/slow?ms=800", abort_after=0.2)
        lab.client("http", tag="nginx", dst=PROXY_FRONT4, port=80, path="/slow?ms=800", abort_after=0.2)
        lab.client("http", tag="haproxy", dst=PROXY_FRONT4, port=8000, path="/slow?ms=800", abort_after=0.2)
        time.sleep(1.0)  # the backend's late answers hit closed sockets

    def expects(self) -> list[Expect]:
        client = dict(role="client", host="client", kind="application", cause="abortive_close")
        return [
            Expect("client abort (direct)", match=on_flow("direct", to="peer"), min=1, max=1, **client,
                   note="The client closed with SO_LINGER 0 while waiting for the response.",
                   logs=((APP, r"peer=10\.77\.1\.2:{port}\b"),)),
            Expect("client abort (nginx)", match=on_flow("nginx", to="peer"), min=1, max=1, **client,
                   note="nginx logs 499 and closes its upstream connection with a FIN; it forwards no RST.",
                   logs=((ACC, r"10\.77\.1\.2:{port} .* 499 "), (ERR, r"client prematurely closed"))),
            Expect("client abort (HAProxy)", match=on_flow("haproxy", to="peer"), min=1, max=1, **client,
                   note="HAProxy logs the client abort (CH--).", logs=((HAP, r"10\.77\.1\.2:{port} "),)),
            Expect("late response hits HAProxy's closed socket", match=both(leg("proxy", "server", 8080),
                   in_log(HAP, r"10\.77\.3\.1:{port} 10\.77\.3\.2:8080")), min=1, max=1, role="proxy",
                   host="proxy", kind="application", cause="abortive_close",
                   note="HAProxy (no abortonclose) still waited for the backend's response, ACKed it, then aborted "
                        "the server connection (RST|ACK with timestamps: an active reset) because the client was "
                        "gone (CD--).",
                   logs=((HAP, r"10\.77\.3\.1:{port} "), (APP, r"peer=10\.77\.3\.1:{port}\b"))),
            Expect("late response hits nginx's closed socket", match=leg("proxy", "server", 8080), min=1,
                   role="proxy", host="proxy", kind="kernel", cause="abortive_close",
                   note="nginx closed its upstream connection (FIN) after the client's abort (499); the backend's "
                        "late response reached the closed socket and the proxy host's kernel answered RST.",
                   logs=((ERR, r"client prematurely closed.*request: \"{request}\""),
                         (APP, r"peer=10\.77\.3\.1:{port}\b"))),
        ]  # fmt: skip


class ProxyTimeout(Scenario):
    name = "proxy_timeout"
    description = ("The backend takes 2.5 s; nginx (proxy_read_timeout 1s) and HAProxy (timeout server 1s) "
                   "give up, answer 504 and close their upstream connections.")  # fmt: skip

    def drive(self, lab: Lab) -> None:
        lab.client("http", tag="nginx", dst=PROXY_FRONT4, port=80, path="/slow?ms=2500")
        lab.client("http", tag="haproxy", dst=PROXY_FRONT4, port=8000, path="/slow?ms=2500")
        time.sleep(1.8)  # the backend answers after 2.5 s into closed sockets

    def expects(self) -> list[Expect]:
        return [
            Expect("HAProxy timeout server", match=both(leg("proxy", "server", 8080),
                   in_log(HAP, r"10\.77\.3\.1:{port} 10\.77\.3\.2:8080")), min=1, max=1, role="proxy",
                   host="proxy", kind="application", cause="timeout",
                   note="HAProxy's timeout server fired (sH--, 504) and it aborted the server connection.",
                   logs=((HAP, r" 504 .*10\.77\.3\.1:{port} "),)),
            Expect("late response after nginx timeout", match=leg("proxy", "server", 8080), min=1, max=1,
                   role="proxy", host="proxy", kind="kernel", cause="timeout",
                   note="nginx's proxy_read_timeout fired (504, FIN upstream); the backend's late response hit the "
                        "closed socket and the proxy host's kernel answered RST.",
                   logs=((ERR, r"upstream timed out .*request: \"{request}\""), (ACC, r" 504 "),
                         (APP, r"peer=10\.77\.3\.1:{port}\b"))),
        ]  # fmt: skip


class ProxyResetsClient(Scenario):
    name = "proxy_resets_client"
    description = ("The proxies reset clients themselves: nginx `return 444` and client_header_timeout with "
                   "reset_timedout_connection on; HAProxy `tcp-request connection reject` and `option nolinger`.")  # fmt: skip

    def drive(self, lab: Lab) -> None:
        lab.client("http", tag="nginx-444", dst=PROXY_FRONT4, port=81, path="/drop", count=2)
        lab.client("http", tag="nginx-444-v6", dst=PROXY_FRONT6, port=81, path="/drop", count=1)
        lab.client("partial_header", tag="nginx-header-timeout", dst=PROXY_FRONT4, port=81, wait=2.0)
        lab.client("http", tag="haproxy-reject", dst=PROXY_FRONT4, port=8001, path="/", count=2)
        lab.client("http", tag="haproxy-deny", dst=PROXY_FRONT4, port=8002, path="/admin", count=1)
        lab.client("http", tag="haproxy-nolinger", dst=PROXY_FRONT4, port=8002, path="/ok", count=1)

    def expects(self) -> list[Expect]:
        proxy = dict(role="proxy", host="proxy", kind="application")
        return [
            Expect("nginx return 444", match=on_flow("nginx-444", to="client"), min=2, max=2, cause="policy_reject",
                   **proxy, note="`return 444` with reset_timedout_connection on: nginx closes with SO_LINGER 0.",
                   logs=((ACC, r"10\.77\.1\.2:{port} .* 444 "),)),
            Expect("nginx return 444 (IPv6)", match=on_flow("nginx-444-v6", to="client"), min=1, max=1,
                   cause="policy_reject", **proxy, note="Same over IPv6.",
                   logs=((ACC, r"fd00:77:1::2:{port} .* 444 "),)),
            Expect("nginx client_header_timeout", match=on_flow("nginx-header-timeout", to="client"), min=1, max=1,
                   cause="timeout", **proxy,
                   note="Half a request head, then silence: client_header_timeout (1s) fired and "
                        "reset_timedout_connection made nginx reset instead of closing.",
                   logs=((ERR, r"client timed out"), (ACC, r"10\.77\.1\.2:{port} .* 408 "))),
            Expect("HAProxy tcp-request connection reject", match=on_flow("haproxy-reject", to="client"), min=2,
                   max=2, cause="policy_reject", **proxy,
                   note="`tcp-request connection reject` closes the accepted connection with an RST at once."),
            Expect("HAProxy deny with nolinger", match=on_flow("haproxy-deny", to="client"), min=1, max=1,
                   cause="policy_reject", **proxy,
                   note="`http-request deny` answers 403; `option nolinger` makes the close an RST.",
                   logs=((HAP, r"10\.77\.1\.2:{port} .* 403 "),)),
            Expect("HAProxy nolinger close", match=on_flow("haproxy-nolinger", to="client"), min=1, max=1,
                   cause="abortive_close", **proxy,
                   note="A normal 200 with Connection: close; `option nolinger` turns HAProxy's close into an RST.",
                   logs=((HAP, r"10\.77\.1\.2:{port} .* 200 "),)),
            Expect("HAProxy nolinger close, server side", match=both(leg("proxy", "server", 8080),
                   in_log(HAP, r"10\.77\.3\.1:{port} 10\.77\.3\.2:8080")), min=1, max=1,
                   cause="abortive_close", **proxy,
                   note="HAProxy closes a server connection it will not reuse (Connection: close, http-reuse "
                        "never) with SO_LINGER 0, as it does after every such response (see mixed).", logs=((HAP, r"10\.77\.3\.1:{port} "),)),
        ]  # fmt: skip


class FirewallRateLimit(Scenario):
    name = "firewall_rate_limit"
    description = ("nftables on the firewall rejects new connections to the echo port above 2/s "
                   "(`reject with tcp reset`): the RST claims the server's address; IPv4 and IPv6.")  # fmt: skip

    def setup(self, lab: Lab) -> None:
        lab.nft("firewall", RATE_LIMIT)

    def drive(self, lab: Lab) -> None:
        lab.client("burst", tag="burst4", dst=SERVER4, port=9000, count=6)
        lab.client("burst", tag="burst6", dst=SERVER6, port=9000, count=3)

    def cleanup(self, lab: Lab) -> None:
        lab.nft_drop_table("firewall", "inet scenario")

    def expects(self) -> list[Expect]:
        fw = dict(role="middlebox", host="firewall", kind="injected", cause="policy_reject")
        return [
            Expect("rate limit reject", match=on_flow("burst4", to="client"), min=1, max=6, **fw,
                   note="nft `limit rate over 2/second ... reject with tcp reset`: RST|ACK to the SYN, forged with the "
                        "server's address, IP ID 0, TTL one hop higher at the client than the server's packets, "
                        "absent from every capture behind the firewall."),
            Expect("rate limit reject (IPv6)", match=on_flow("burst6", to="client"), min=1, max=3, **fw,
                   note="Same over IPv6."),
        ]  # fmt: skip


RATE_LIMIT = """
table inet scenario {
    chain forward {
        type filter hook forward priority 0; policy accept;
        tcp dport 9000 ct state new limit rate over 2/second burst 2 packets counter reject with tcp reset
    }
}
"""


class FirewallByteLimit(Scenario):
    name = "firewall_byte_limit"
    description = ("nftables rejects a connection's packets once it has carried more than 3000 bytes "
                   "(`ct original bytes > 3000 reject with tcp reset`), in the middle of an upload stream.")  # fmt: skip

    def setup(self, lab: Lab) -> None:
        lab.nft("firewall", BYTE_LIMIT)

    def drive(self, lab: Lab) -> None:
        lab.client("stream", tag="upload", dst=SERVER4, port=9002, chunks=60, size=200)
        time.sleep(1.3)  # the sink's idle close runs into the rule too

    def cleanup(self, lab: Lab) -> None:
        lab.nft_drop_table("firewall", "inet scenario")

    def expects(self) -> list[Expect]:
        fw = dict(role="middlebox", host="firewall", kind="injected", cause="policy_reject")
        return [
            Expect("byte limit, towards the client", match=on_flow("upload", to="client"), min=1, **fw,
                   note="The client's segment past the limit is rejected: RST forged with the server's address."),
            Expect("byte limit, towards the server", match=on_flow("upload", to="peer"), min=0, **fw,
                   note="The server's next segment (ACK or idle-close FIN) is rejected too: RST forged with the "
                        "client's address, never seen at the client.", logs=((APP, r"sink .*peer=10\.77\.1\.2:{port}\b"),)),
        ]  # fmt: skip


BYTE_LIMIT = """
table inet scenario {
    chain forward {
        type filter hook forward priority 0; policy accept;
        tcp dport 9002 ct original bytes > 3000 counter reject with tcp reset
        tcp sport 9002 ct original bytes > 3000 counter reject with tcp reset
    }
}
"""


class DpiInjection(Scenario):
    name = "dpi_injection"
    description = ("An out-of-band DPI box on the firewall sniffs for the keyword FORBIDDEN and forges RST|ACKs "
                   "towards both ends (seq at the exact next sequence number); the offending segment itself "
                   "passes.")  # fmt: skip

    def setup(self, lab: Lab) -> None:
        start_injector(lab)

    def drive(self, lab: Lab) -> None:
        lab.client("echo_session", tag="clean", dst=SERVER4, port=9003, lines=["hello", "GET /allowed/page"])
        lab.client("dpi", tag="keyword", dst=SERVER4, port=9003)
        lab.client("dpi", tag="keyword", dst=SERVER4, port=9003)

    def cleanup(self, lab: Lab) -> None:
        lab.procs.stop("injector")

    def expects(self) -> list[Expect]:
        fw = dict(role="middlebox", host="firewall", kind="injected", cause="policy_reject")
        return [
            Expect("DPI reset towards the client", match=on_flow("keyword", to="client"), min=2, max=2, **fw,
                   note="Forged with the server's address; absent from the server's capture; TTL 64 at the client "
                        "where the server's own packets arrive with 62.",
                   logs=(("syslog", r"in 10\.77\.1\.2:{port} "),)),
            Expect("DPI reset towards the server", match=on_flow("keyword", to="peer"), min=2, max=2, **fw,
                   note="Forged with the client's address; absent from the client's capture.",
                   logs=(("syslog", r"in 10\.77\.1\.2:{port} "),)),
        ]  # fmt: skip


def start_injector(lab: Lab) -> None:
    log = lab.workdir / "firewall-dpi.log"
    size = log.stat().st_size if log.exists() else 0
    lab.spawn("injector", "firewall", "resetlens.lab.injector", "fw-c", "FORBIDDEN", "9003", str(log))
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and (not log.exists() or log.stat().st_size == size):
        time.sleep(0.02)


class ConntrackLoss(Scenario):
    name = "conntrack_loss"
    description = ("The firewall NATs the client (snat to 10.77.2.1) and loses its conntrack state mid-connection "
                   "(`conntrack -F`); with nf_conntrack_tcp_loose=0 the next segments are INVALID and rejected "
                   "with RSTs in both directions.")  # fmt: skip

    def setup(self, lab: Lab) -> None:
        lab.sysctl("firewall", "net.netfilter.nf_conntrack_tcp_loose", "0")
        lab.nft("firewall", NAT_RULES)

    def drive(self, lab: Lab) -> None:
        c = lab.client_start("echo_session", tag="nat", dst=SERVER4, port=9000, lines=["one", "two", "three"],
                             pause="flush")  # fmt: skip
        c.wait_ready("flush")
        lab.sh("firewall", "conntrack", "-F")
        lab.mark("flushed")
        c.go()
        c.finish()
        time.sleep(1.2)  # the server's idle close meets the missing state too

    def cleanup(self, lab: Lab) -> None:
        lab.nft_drop_table("firewall", "ip scenario")
        lab.sysctl("firewall", "net.netfilter.nf_conntrack_tcp_loose", "1")

    def expects(self) -> list[Expect]:
        fw = dict(role="middlebox", host="firewall", kind="injected", cause="state_lost")
        return [
            Expect("INVALID client segment rejected", match=on_flow("nat", to="client"), min=1, max=1, **fw,
                   note="After the flush the client's next segment matches no conntrack entry (INVALID with "
                        "tcp_loose=0); the firewall rejects it with an RST forged with the server's address."),
            Expect("INVALID server segment rejected", match=leg("firewall", "server", 9000), min=0, max=1, **fw,
                   note="The server's idle-close FIN is addressed to the NAT address 10.77.2.1, which has no mapping "
                        "any more; the firewall answers it with an RST from 10.77.2.1.",
                   logs=((APP, r"echo idle close .*peer=10\.77\.2\.1:{port}\b"),)),
        ]  # fmt: skip


NAT_RULES = """
table ip scenario {
    chain postrouting {
        type nat hook postrouting priority srcnat; policy accept;
        oifname "fw-p" ip saddr 10.77.1.2 tcp dport 9000 snat to 10.77.2.1
    }
    chain forward {
        type filter hook forward priority 0; policy accept;
        ct state invalid counter reject with tcp reset
    }
    chain input {
        type filter hook input priority 0; policy accept;
        ct state invalid tcp dport != 22 counter reject with tcp reset
    }
}
"""


class StaleKeepalive(Scenario):
    name = "stale_keepalive"
    description = ("The client's pool keeps a keep-alive connection for 1.6 s; the backend (idle 1 s) and nginx "
                   "(keepalive_timeout 1s) already closed it; the reused connection's request gets an RST.")  # fmt: skip

    def drive(self, lab: Lab) -> None:
        lab.client("stale_keepalive", tag="direct", dst=SERVER4, port=8080, idle=1.6)
        lab.client("stale_keepalive", tag="direct6", dst=SERVER6, port=8080, idle=1.6)
        lab.client("stale_keepalive", tag="nginx", dst=PROXY_FRONT4, port=80, idle=1.6)

    def expects(self) -> list[Expect]:
        server = dict(role="server", host="server", kind="kernel", cause="stale_reuse")
        return [
            Expect("reuse after backend idle close", match=on_flow("direct", to="client"), min=1, max=1, **server,
                   note="The backend closed the idle connection (FIN); the client's pool reused it and the server's "
                        "kernel answered the request with RST.",
                   logs=((APP, r"idle close .*peer=10\.77\.1\.2:{port}\b"),)),
            Expect("reuse after backend idle close (IPv6)", match=on_flow("direct6", to="client"), min=1, max=1,
                   **server, note="Same over IPv6.", logs=((APP, r"idle close .*peer=\[fd00:77:1::2\]:{port}\b"),)),
            Expect("reuse after nginx keepalive_timeout", match=on_flow("nginx", to="client"), min=1, max=1,
                   role="proxy", host="proxy", kind="kernel", cause="stale_reuse",
                   note="nginx's keepalive_timeout (1s) closed the idle client connection with a FIN; the reused "
                        "connection's request hit the closed socket and the proxy host's kernel answered RST.",
                   logs=((ACC, r"10\.77\.1\.2:{port} "),)),
        ]  # fmt: skip


class HalfOpenRestart(Scenario):
    name = "half_open_restart"
    description = ("The backend host loses its connection state silently (the backend is SIGKILLed while its "
                   "FIN is dropped, and the socket destroyed), systemd restarts it (journal); the client's next "
                   "segment on its old connection gets an RST from the new incarnation's kernel.")  # fmt: skip

    def drive(self, lab: Lab) -> None:
        c = lab.client_start("echo_session", tag="half-open", dst=SERVER4, port=9000, lines=["a", "b", "c"],
                             pause="restart")  # fmt: skip
        c.wait_ready("restart")
        lab.nft("server", SILENCE_9000)
        lab.svc.kill_backend(signal.SIGKILL)
        lab.sh("server", "ss", "-K", "-tn", "sport = :9000", check=False)
        lab.nft_drop_table("server", "inet silence")
        lab.svc.restart_backend()
        lab.mark("restarted")
        c.go()
        c.finish()

    def expects(self) -> list[Expect]:
        return [
            Expect("segment on a forgotten connection", match=on_flow("half-open", to="client"), min=1, max=1,
                   role="server", host="server", kind="kernel", cause="state_lost",
                   note="The restarted server has no socket for the client's old connection: its kernel answers "
                        "the next segment with RST (the journal shows the kill and the restart).",
                   logs=((JRN, r"Main process exited|Scheduled restart job|Started"),)),
        ]  # fmt: skip


SILENCE_9000 = """
table inet silence {
    chain output {
        type filter hook output priority 0; policy accept;
        tcp sport 9000 counter drop
    }
}
"""


class TlsReset(Scenario):
    name = "tls_reset"
    description = ("TLS resets right after the ClientHello: the backend's TLS port resets a ClientHello without "
                   "SNI (with SNI it completes); and TLS sent to plain-HTTP ports (nginx and the backend).")  # fmt: skip

    def drive(self, lab: Lab) -> None:
        lab.client("tls", tag="no-sni", dst=SERVER4, port=9443, sni=None)
        lab.client("tls", tag="no-sni6", dst=SERVER6, port=9443, sni=None)
        lab.client("tls", tag="sni", dst=SERVER4, port=9443, sni="lab.resetlens.test")
        lab.client("tls", tag="tls-to-nginx-http", dst=PROXY_FRONT4, port=80, sni="lab.resetlens.test")
        lab.client("tls", tag="tls-to-backend-http", dst=SERVER4, port=8080, sni="lab.resetlens.test")

    def expects(self) -> list[Expect]:
        server = dict(role="server", host="server", kind="application", cause="tls_handshake")
        return [
            Expect("ClientHello without SNI", match=on_flow("no-sni", to="client"), min=1, max=1, **server,
                   note="The TLS service requires SNI: it peeked at the ClientHello and closed with SO_LINGER 0.",
                   logs=((APP, r"without SNI .*peer=10\.77\.1\.2:{port}\b"),)),
            Expect("ClientHello without SNI (IPv6)", match=on_flow("no-sni6", to="client"), min=1, max=1, **server,
                   note="Same over IPv6.", logs=((APP, r"without SNI .*peer=\[fd00:77:1::2\]:{port}\b"),)),
            Expect("TLS client drops a plain-HTTP answer (nginx)", match=on_flow("tls-to-nginx-http", to="peer"),
                   min=0, role="client", host="client", kind="application", cause="tls_handshake",
                   note="nginx answered the ClientHello with a plain 400; the TLS client failed on the bytes and "
                        "closed with the rest unread, so its kernel sent RST.",
                   logs=((ACC, r"10\.77\.1\.2:{port} .* 400 "),)),
            Expect("TLS client drops a plain-HTTP answer (backend)", match=on_flow("tls-to-backend-http", to="peer"),
                   min=0, role="client", host="client", kind="application", cause="tls_handshake",
                   note="The backend answered the ClientHello with a plain 400; the TLS client closed with the rest "
                        "unread, so its kernel sent RST.",
                   logs=((APP, r"TLS ClientHello on plain port.*peer=10\.77\.1\.2:{port}\b"),)),
        ]  # fmt: skip


class Mixed(Scenario):
    name = "mixed"
    description = ("About 50 connections: background HTTP through nginx and HAProxy, echo and TLS traffic, with "
                   "interleaved backend aborts, a client abort, unread-data closes, DPI injections, a closed "
                   "port, a TLS ClientHello without SNI, a stale keep-alive reuse and a byte-limited upload.")  # fmt: skip

    def setup(self, lab: Lab) -> None:
        lab.nft("firewall", BYTE_LIMIT)
        start_injector(lab)

    def drive(self, lab: Lab) -> None:
        background = [
            lab.client_start(
                "http", tag="bg-nginx", dst=PROXY_FRONT4, port=80, path="/ok", count=15, gap=0.12
            ),
            lab.client_start(
                "http", tag="bg-haproxy", dst=PROXY_FRONT4, port=8000, path="/ok", count=10, gap=0.18
            ),
            lab.client_start("burst", tag="bg-echo", dst=SERVER6, port=9000, count=10, gap=0.15),
            lab.client_start(
                "tls", tag="bg-tls", dst=SERVER4, port=9443, sni="lab.resetlens.test", count=3, gap=0.5
            ),
        ]
        ka = lab.client_start("stale_keepalive", tag="stale", dst=SERVER4, port=8080, idle=1.6)
        lab.client("http", tag="abort", dst=SERVER4, port=8080, path="/abort", count=2, gap=0.1)
        lab.client("dpi", tag="keyword", dst=SERVER4, port=9003)
        lab.client("http", tag="abort-nginx", dst=PROXY_FRONT4, port=80, path="/abort")
        lab.client("refused", tag="closed", dst=SERVER4, port=8099, count=2)
        lab.client(
            "http", tag="client-abort", dst=PROXY_FRONT4, port=80, path="/slow?ms=600", abort_after=0.2
        )
        lab.client("unread", tag="unread", dst=SERVER4, port=9001, side="server")
        lab.client("tls", tag="no-sni", dst=SERVER4, port=9443, sni=None)
        lab.client("stream", tag="upload", dst=SERVER4, port=9002, chunks=40, size=200)
        lab.client("dpi", tag="keyword", dst=SERVER4, port=9003)
        lab.client("unread", tag="unread", dst=SERVER4, port=9001, side="server")
        for c in [*background, ka]:
            c.finish()
        time.sleep(1.2)  # late responses and the sink's idle close

    def cleanup(self, lab: Lab) -> None:
        lab.procs.stop("injector")
        lab.nft_drop_table("firewall", "inet scenario")

    def expects(self) -> list[Expect]:
        fw = dict(role="middlebox", host="firewall", kind="injected")
        server_app = dict(role="server", host="server", kind="application")
        return [
            Expect("backend abort", match=on_flow("abort", to="client"), min=2, max=2, cause="abortive_close",
                   **server_app, note="The backend read the request and closed with SO_LINGER 0.",
                   logs=((APP, r"abort .*peer=10\.77\.1\.2:{port}\b"),)),
            Expect("backend abort towards nginx", match=leg("server", "proxy", 8080), min=1, max=1,
                   cause="abortive_close", **server_app,
                   note="The backend aborted nginx's upstream connection; the client got 502 + FIN.",
                   logs=((ERR, r"\(104: Connection reset by peer\)"), (APP, r"abort .*peer=10\.77\.3\.1:{port}\b"))),
            Expect("client abort", match=on_flow("client-abort", to="peer"), min=1, max=1, role="client",
                   host="client", kind="application", cause="abortive_close",
                   note="The client aborted with SO_LINGER 0; nginx logged 499.",
                   logs=((ACC, r"10\.77\.1\.2:{port} .* 499 "),)),
            Expect("HAProxy resets the server side after each response",
                   match=both(leg("proxy", "server", 8080), in_log(HAP, r"10\.77\.3\.1:{port} 10\.77\.3\.2:8080")),
                   min=10, max=10, role="proxy", host="proxy", kind="application", cause="abortive_close",
                   note="HAProxy closes a server connection it will not reuse (the client sent Connection: close; "
                        "http-reuse never) with SO_LINGER 0: one RST|ACK per background request, invisible to the "
                        "client, which got its 200.", logs=((HAP, r" 200 .*10\.77\.3\.1:{port} "),)),
            Expect("late response after the client abort", match=leg("proxy", "server", 8080), min=1, max=1,
                   role="proxy", host="proxy", kind="kernel", cause="abortive_close",
                   note="nginx closed its upstream connection after the 499; the backend's late response got the "
                        "proxy host kernel's RST.", logs=((APP, r"peer=10\.77\.3\.1:{port}\b"),)),
            Expect("closed port", match=on_flow("closed", to="client"), min=2, max=2, role="server", host="server",
                   kind="kernel", cause="no_listener", note="Nothing listens on 8099."),
            Expect("unread data", match=on_flow("unread", to="client"), min=2, max=2, cause="abortive_close",
                   **server_app, note="The backend closed with unread data queued.",
                   logs=((APP, r"unread: .*peer=10\.77\.1\.2:{port}\b"),)),
            Expect("TLS without SNI", match=on_flow("no-sni", to="client"), min=1, max=1, cause="tls_handshake",
                   **server_app, note="ClientHello without SNI, reset by the TLS service.",
                   logs=((APP, r"without SNI .*peer=10\.77\.1\.2:{port}\b"),)),
            Expect("stale keep-alive reuse", match=on_flow("stale", to="client"), min=1, max=1, role="server",
                   host="server", kind="kernel", cause="stale_reuse",
                   note="The pooled connection was reused after the backend's idle close.",
                   logs=((APP, r"idle close .*peer=10\.77\.1\.2:{port}\b"),)),
            Expect("DPI towards the client", match=on_flow("keyword", to="client"), min=2, max=2,
                   cause="policy_reject", **fw, note="Forged with the server's address by the DPI box.",
                   logs=(("syslog", r"in 10\.77\.1\.2:{port} "),)),
            Expect("DPI towards the server", match=on_flow("keyword", to="peer"), min=2, max=2,
                   cause="policy_reject", **fw, note="Forged with the client's address by the DPI box.",
                   logs=(("syslog", r"in 10\.77\.1\.2:{port} "),)),
            Expect("byte limit towards the client", match=on_flow("upload", to="client"), min=1,
                   cause="policy_reject", **fw, note="nft byte limit: RST forged with the server's address."),
            Expect("byte limit towards the server", match=on_flow("upload", to="peer"), min=0,
                   cause="policy_reject", **fw, note="nft byte limit: RST forged with the client's address."),
        ]  # fmt: skip


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (NoListener(), BacklogOverflow(), AppAbort(), ClientAbort(), UnreadData(), ProxyTimeout(),
              ProxyResetsClient(), FirewallRateLimit(), FirewallByteLimit(), DpiInjection(), ConntrackLoss(),
              StaleKeepalive(), HalfOpenRestart(), TlsReset(), Mixed())
}  # fmt: skip
