"""A real ``mosquitto`` broker per test (or per session); its test client is in ``mqtt_client.py``.

The broker listens on 127.0.0.1 only, on a free port picked at start and kept
across :meth:`MosquittoBroker.restart`, so "broker goes away and comes back"
tests see the same address. Start-up takes ~25 ms (plain; ~0.2 s the first time
with TLS + password file, which are generated then), a restart ~25 ms.

Example (plain broker)::

    from tests.support.mqtt_client import MqttProbe

    with MosquittoBroker(tmp_path / "mq") as broker:
        with MqttProbe(broker, "genre-pi/test1/#") as probe:
            probe.publish("genre-pi/test1/state", b"jazz", retain=True)
            msg = probe.wait_for("genre-pi/test1/state", lambda m: m.payload == b"jazz")
            assert msg.retain is False  # live delivery; a late subscriber sees retain=True

Example (auth + TLS)::

    broker = MosquittoBroker(tmp_path / "mq", users={"pi": "s3cret"}, allow_anonymous=False, tls=True)
    broker.start()
    probe = MqttProbe(broker, "#", username="pi", password="s3cret", use_tls=True)
    ...
    probe.close()
    broker.stop()
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from tests.support.procs import ServiceProcess
from tests.support.tls import TlsBundle, make_tls_bundle

__all__ = ["MosquittoBroker", "free_port", "mosquitto_available"]

# Seconds. Generous upper bounds: normal figures are ~10 ms (start) and <5 ms (stop).
DEFAULT_START_TIMEOUT_S = 5.0
DEFAULT_STOP_TIMEOUT_S = 5.0


def mosquitto_available() -> bool:
    """True when both ``mosquitto`` and ``mosquitto_passwd`` are installed."""
    return shutil.which("mosquitto") is not None and shutil.which("mosquitto_passwd") is not None


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago.

    There is an unavoidable race between closing this probe socket and the
    broker binding; :meth:`MosquittoBroker.start` retries with a new port if
    the bind fails (only on the first start, never on restart).
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _port_accepts(port: int, timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout):
            return True
    except OSError:
        return False


class MosquittoBroker(ServiceProcess):
    """One ``mosquitto -c <conf>`` process with a generated config in ``workdir``.

    Args:
        workdir: directory for config, password file, PKI and ``mosquitto.log``
            (created; normally a pytest ``tmp_path`` subdirectory).
        users: ``{username: password}``; writes a ``password_file`` with
            ``mosquitto_passwd -b -c``. Empty -> no password file.
        allow_anonymous: mosquitto 2.x defaults to *false* when listeners are
            configured, so this is always written out explicitly.
        tls: add a second listener (``tls_port``) with a server cert from
            :func:`tests.support.tls.make_tls_bundle`; see :attr:`tls`.
        require_client_cert: on the TLS listener, demand a client cert
            signed by the test CA (``bundle.client_cert``).
        extra_config: verbatim lines appended to the config (e.g.
            ``["max_keepalive 5"]``).

    Attributes ``host``, ``port`` (plain), ``tls_port`` (``None`` without TLS),
    ``log_path`` and ``tls`` (:class:`TlsBundle` or ``None``) are stable for the
    object's life, including across restarts.
    """

    host = "127.0.0.1"

    def __init__(
        self,
        workdir: Path,
        *,
        users: dict[str, str] | None = None,
        allow_anonymous: bool = True,
        tls: bool = False,
        require_client_cert: bool = False,
        extra_config: list[str] | None = None,
    ) -> None:
        super().__init__(workdir / "mosquitto.log")
        self.stop_timeout_s = DEFAULT_STOP_TIMEOUT_S
        self.workdir = workdir
        self.users = dict(users or {})
        self.allow_anonymous = allow_anonymous
        self.use_tls = tls
        self.require_client_cert = require_client_cert
        self.extra_config = list(extra_config or [])
        self.port = 0
        self.tls_port: int | None = None
        self.tls: TlsBundle | None = None
        self.conf_path = workdir / "mosquitto.conf"
        self.start_seconds: float | None = None  # wall time of the last start(), for reports
        self._prepared = False

    # -- lifecycle ---------------------------------------------------------

    def _prepare(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self.users:
            pw = self.workdir / "passwd"
            first = True
            for user, password in self.users.items():
                # -c only for the first user: it truncates the file.
                args = ["mosquitto_passwd", "-b", *(["-c"] if first else []), str(pw), user, password]
                subprocess.run(args, check=True, capture_output=True, timeout=10)
                first = False
            pw.chmod(0o644)
        if self.use_tls:
            self.tls = make_tls_bundle(self.workdir / "pki")
        self._prepared = True

    def _write_config(self) -> None:
        lines = [
            # Started as root, mosquitto 2.x drops to the `mosquitto` user, which
            # cannot traverse pytest's 0700 tmp dirs (/tmp/pytest-of-root/...), so
            # chmod on our own files would not be enough. `user root` keeps it as
            # root; when tests run unprivileged the option is ignored.
            "user root",
            "persistence false",
            "log_dest stderr",
            "log_type all",
            "log_timestamp true",
            "log_timestamp_format %H:%M:%S",
            "connection_messages true",
            # Listener options (auth, TLS) apply to each listener independently.
            "per_listener_settings true",
            f"listener {self.port} {self.host}",
            *self._auth_lines(),
        ]
        if self.use_tls:
            assert self.tls is not None and self.tls_port is not None
            lines += [
                f"listener {self.tls_port} {self.host}",
                *self._auth_lines(),
                f"cafile {self.tls.ca_cert}",
                f"certfile {self.tls.server_cert}",
                f"keyfile {self.tls.server_key}",
                f"require_certificate {'true' if self.require_client_cert else 'false'}",
            ]
        lines += self.extra_config
        self.conf_path.write_text("\n".join(lines) + "\n")
        self.conf_path.chmod(0o644)

    def _auth_lines(self) -> list[str]:
        lines = [f"allow_anonymous {'true' if self.allow_anonymous else 'false'}"]
        if self.users:
            lines.append(f"password_file {self.workdir / 'passwd'}")
        return lines

    def start(self, timeout: float = DEFAULT_START_TIMEOUT_S) -> MosquittoBroker:
        """Start the broker and block until every listener accepts TCP connections.

        The first call picks free ports; later calls (see :meth:`restart`)
        reuse them. Raises ``RuntimeError`` with the broker log if it exits
        or is not ready within ``timeout`` seconds. Returns ``self``.
        """
        if self.running:
            return self
        if not self._prepared:
            self._prepare()
        first_start = self.port == 0
        attempts = 5 if first_start else 1
        for attempt in range(attempts):
            if first_start:
                self.port = free_port()
                self.tls_port = free_port() if self.use_tls else None
                if self.tls_port == self.port:
                    continue
            try:
                self._spawn(timeout)
                return self
            except RuntimeError:
                # A port race loses only on the first start; anything else is real.
                if attempt + 1 < attempts and "Address already in use" in self.log_text():
                    continue
                raise
        raise RuntimeError("could not find free ports for mosquitto")

    def _spawn(self, timeout: float) -> None:
        self._write_config()
        t0 = time.monotonic()
        self._launch(["mosquitto", "-c", str(self.conf_path)], at_exit=self.kill)
        assert self._proc is not None
        ports = [self.port] + ([self.tls_port] if self.tls_port else [])
        deadline = t0 + timeout
        while True:
            if self._proc.poll() is not None:
                rc = self._proc.returncode
                self._reap()
                raise RuntimeError(f"mosquitto exited with {rc} during start:\n{self.log_text()}")
            if all(_port_accepts(p) for p in ports):
                break
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"mosquitto not ready on {ports} after {timeout}s:\n{self.log_text()}")
            time.sleep(0.005)
        self.start_seconds = time.monotonic() - t0

    def restart(self, down_seconds: float = 0.0, *, hard: bool = False) -> None:
        """Stop (or kill, ``hard=True``), stay down ``down_seconds``, start on the same ports.

        Retained messages are lost (``persistence false``), as on a broker
        restart without a persistence file.
        """
        if hard:
            self.kill()
        else:
            self.stop()
        if down_seconds > 0:
            time.sleep(down_seconds)
        self.start()

    def pause(self) -> None:
        """SIGSTOP: TCP stays open but nothing is answered (half-dead broker, keepalive tests)."""
        if self._proc is not None and self._proc.poll() is None:
            os.kill(self._proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT after :meth:`pause`."""
        if self._proc is not None and self._proc.poll() is None:
            os.kill(self._proc.pid, signal.SIGCONT)

    # -- conveniences ------------------------------------------------------

    def url(self, *, tls: bool = False) -> str:
        """``mqtt://127.0.0.1:PORT`` or ``mqtts://127.0.0.1:TLS_PORT``, e.g. for daemon config."""
        if tls:
            if self.tls_port is None:
                raise ValueError("broker was created without tls=True")
            return f"mqtts://{self.host}:{self.tls_port}"
        return f"mqtt://{self.host}:{self.port}"

    def __repr__(self) -> str:
        return f"MosquittoBroker(port={self.port}, tls_port={self.tls_port}, pid={self.pid})"
