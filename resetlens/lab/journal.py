"""systemd's (PID 1) unit lifecycle messages, written when the lab really stops, kills or starts the backend.

Lines follow `journalctl -o json`: every value a string, timestamps in µs since the epoch
(__REALTIME_TIMESTAMP) and since boot (__MONOTONIC_TIMESTAMP, CLOCK_MONOTONIC). The same entries
are kept in export format so `systemd-journal-remote` can build a real binary .journal file.
"""

from __future__ import annotations

import gzip
import json
import secrets
import shutil
import subprocess
import time
from pathlib import Path

# MESSAGE_IDs from systemd's src/systemd/sd-messages.h
SD_MESSAGE_UNIT_STARTING = "7d4958e842da4a758f6c1cdc7b36dcc5"
SD_MESSAGE_UNIT_STARTED = "39f53479d3a045ac8e11786248231fbf"
SD_MESSAGE_UNIT_STOPPING = "de5b426a63be47a7b6ac3eaac82e2f6f"
SD_MESSAGE_UNIT_STOPPED = "9d1aaa27d60140bd96365438aad20286"
SD_MESSAGE_UNIT_PROCESS_EXIT = "98e322203f7a4ed290d09fe03c09fe15"
SD_MESSAGE_UNIT_FAILURE_RESULT = "d9b373ed55a64feb8242e02dbe79a49c"
SD_MESSAGE_UNIT_RESTART_SCHEDULED = "5eb03494b6584870a536b337290809b3"
SD_MESSAGE_UNIT_SUCCESS = "7ad2d189f7e94e70a38c781354912448"

UNIT = "resetlens-backend.service"
DESCRIPTION = "resetlens lab backend"
JOURNAL_REMOTE = "/usr/lib/systemd/systemd-journal-remote"
SIGNAL_NAMES = {9: "KILL", 15: "TERM"}

# Where systemd logs each message (src/core/), for CODE_FILE/CODE_FUNC.
CODE = {
    SD_MESSAGE_UNIT_STARTING: ("src/core/job.c", "job_emit_start_message"),
    SD_MESSAGE_UNIT_STOPPING: ("src/core/job.c", "job_emit_start_message"),
    SD_MESSAGE_UNIT_STARTED: ("src/core/job.c", "job_emit_done_message"),
    SD_MESSAGE_UNIT_STOPPED: ("src/core/job.c", "job_emit_done_message"),
    SD_MESSAGE_UNIT_PROCESS_EXIT: ("src/core/service.c", "service_sigchld_event"),
    SD_MESSAGE_UNIT_FAILURE_RESULT: ("src/core/unit.c", "unit_log_failure"),
    SD_MESSAGE_UNIT_RESTART_SCHEDULED: ("src/core/service.c", "service_dispatch_timer"),
    SD_MESSAGE_UNIT_SUCCESS: ("src/core/unit.c", "unit_log_success"),
}


class Journal:
    """Collects entries for one host; `write_json` gives journalctl -o json lines."""

    def __init__(self, hostname: str) -> None:
        self.hostname = hostname
        self.boot_id = secrets.token_hex(16)
        self.machine_id = secrets.token_hex(16)
        self.seqnum_id = secrets.token_hex(16)
        self.seqnum = 0
        self.invocation_id = secrets.token_hex(16)
        self.entries: list[dict[str, str]] = []

    def _emit(self, message_id: str, message: str, priority: int, **extra: str) -> dict[str, str]:
        self.seqnum += 1
        realtime = time.time_ns() // 1000
        monotonic = time.monotonic_ns() // 1000
        cursor = (f"s={self.seqnum_id};i={self.seqnum:x};b={self.boot_id};m={monotonic:x};"
                  f"t={realtime:x};x={secrets.randbits(64):x}")  # fmt: skip
        code_file, code_func = CODE[message_id]
        entry = {
            "__CURSOR": cursor,
            "__REALTIME_TIMESTAMP": str(realtime),
            "__MONOTONIC_TIMESTAMP": str(monotonic),
            "__SEQNUM": str(self.seqnum),
            "__SEQNUM_ID": self.seqnum_id,
            "_BOOT_ID": self.boot_id,
            "_MACHINE_ID": self.machine_id,
            "_HOSTNAME": self.hostname,
            "_TRANSPORT": "journal",
            "_PID": "1",
            "_UID": "0",
            "_GID": "0",
            "_COMM": "systemd",
            "_EXE": "/usr/lib/systemd/systemd",
            "_CMDLINE": "/sbin/init",
            "_CAP_EFFECTIVE": "1ffffffffff",
            "_SYSTEMD_CGROUP": "/init.scope",
            "_SYSTEMD_UNIT": "init.scope",
            "_SYSTEMD_SLICE": "-.slice",
            "_SOURCE_REALTIME_TIMESTAMP": str(realtime - 7),
            "PRIORITY": str(priority),
            "SYSLOG_FACILITY": "3",
            "SYSLOG_IDENTIFIER": "systemd",
            "CODE_FILE": code_file,
            "CODE_LINE": str(800 + len(message) % 150),
            "CODE_FUNC": code_func,
            "MESSAGE_ID": message_id,
            "MESSAGE": message,
            "UNIT": UNIT,
            "INVOCATION_ID": self.invocation_id,
            **extra,
        }
        self.entries.append(entry)
        return entry

    # --- lifecycle sequences, as systemd 252 prints them --------------------------------------

    def starting(self) -> None:
        self._emit(SD_MESSAGE_UNIT_STARTING, f"Starting {UNIT} - {DESCRIPTION}...", 6, JOB_TYPE="start")

    def started(self) -> None:
        self._emit(
            SD_MESSAGE_UNIT_STARTED,
            f"Started {UNIT} - {DESCRIPTION}.",
            6,
            JOB_TYPE="start",
            JOB_RESULT="done",
        )

    def killed(self, signo: int) -> None:
        name = SIGNAL_NAMES.get(signo, str(signo))
        self._emit(SD_MESSAGE_UNIT_PROCESS_EXIT, f"{UNIT}: Main process exited, code=killed, status={signo}/{name}", 5,
                   EXIT_CODE="killed", EXIT_STATUS=str(signo))  # fmt: skip
        self._emit(
            SD_MESSAGE_UNIT_FAILURE_RESULT, f"{UNIT}: Failed with result 'signal'.", 4, UNIT_RESULT="signal"
        )

    def restart_scheduled(self, counter: int) -> None:
        self._emit(SD_MESSAGE_UNIT_RESTART_SCHEDULED, f"{UNIT}: Scheduled restart job, restart counter is at {counter}.",
                   6, N_RESTARTS=str(counter))  # fmt: skip
        self._emit(
            SD_MESSAGE_UNIT_STOPPED,
            f"Stopped {UNIT} - {DESCRIPTION}.",
            6,
            JOB_TYPE="restart",
            JOB_RESULT="done",
        )
        self.invocation_id = secrets.token_hex(16)

    def new_invocation(self) -> None:
        self.invocation_id = secrets.token_hex(16)

    # --- output -------------------------------------------------------------------------------

    def write_json(self, path: Path, since: int = 0) -> int:
        """Entries[since:] as `journalctl -o json` lines; returns how many were written."""
        rows = self.entries[since:]
        if rows:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("".join(json.dumps(e, separators=(",", ":")) + "\n" for e in rows))
        return len(rows)

    def write_binary(self, path: Path, since: int = 0) -> bool:
        """A real .journal file via systemd-journal-remote, gzip-compressed (the raw file is 8 MB of mostly zeros)."""
        rows = self.entries[since:]
        if not rows or not Path(JOURNAL_REMOTE).exists():
            return False
        export = "".join("".join(f"{k}={v}\n" for k, v in e.items() if k != "__CURSOR") + "\n" for e in rows)
        tmp = path.with_suffix(".tmp.journal")
        tmp.unlink(missing_ok=True)
        done = subprocess.run([JOURNAL_REMOTE, f"--output={tmp}", "-"], input=export, text=True, capture_output=True,
                              timeout=20)  # fmt: skip
        if done.returncode != 0 or not tmp.exists():
            return False
        with open(tmp, "rb") as src, gzip.open(path, "wb") as dst:
            shutil.copyfileobj(src, dst)
        tmp.unlink()
        return True
