"""The scenarios: what each one does to put RSTs on the wire, and the truth label of every reset it causes.

Ports: nginx 80 (plain) and 81 (resets clients itself); HAProxy 8000 (http), 8001 (tcp reject),
8002 (nolinger); backend 8080 (HTTP), 9000 (echo), 9001 (unread), 9002 (sink), 9003 (slow echo),
9100 (stuck listener), 9443 (TLS).
"""

from __future__ import annotations

import signal
import time
from dataclasses import dataclass

from resetlens.lab.runner import Lab
from resetlens.lab.topology import CLIENT4, CLIENT6, FW_INNER4, PROXY_FRONT4, PROXY_FRONT6, SERVER4, SERVER6
from resetlens.lab.verify import Expect, after, both, leg, on_flow

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


SCENARIOS: dict[str, Scenario] = {s.name: s for s in (NoListener(), AppAbort(), UnreadData())}

_unused = (CLIENT4, CLIENT6, FW_INNER4, PROXY_FRONT6, after, both, dataclass)
