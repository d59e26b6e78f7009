"""MQTT publisher: Last Will, reconnect with capped backoff, and a latest-state-only outbox.

paho's network thread (``loop_start``) owns the socket and reconnects (exponential backoff,
``reconnect_min_s`` doubling up to ``reconnect_max_s``, 5 s by default). Our outbox thread sends only the
*latest* genre and state, one message at a time and waiting for each acknowledgement, so a
broker that is down or slow never makes anything queue up: classification keeps running and
newer values simply replace older unsent ones. Every (re)connect re-sends discovery, genre, state,
diagnostics and availability, all retained, and ``online`` goes out only after the genre: a restarted
daemon stays ``offline`` (its predecessor's Will) until its first fresh decision, so the previous
process's retained genre never looks current.
"""

from __future__ import annotations

import logging
import ssl
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from daemon.discovery import OFFLINE, ONLINE, Topics
from daemon.settings import MqttSettings

log = logging.getLogger(__name__)
ACK_TIMEOUT_S = 2.0  # per message; after that it is marked unsent and retried
OFFLINE_TIMEOUT_S = 0.8  # shutdown budget for the final `offline` (the whole stop must fit in 2 s)


@dataclass
class MqttStats:
    connects: int = 0
    published: int = 0
    connected: bool = False

    @property
    def reconnects(self) -> int:
        return max(0, self.connects - 1)


class Publisher:
    """Owns the paho client. ``set_genre``/``set_state`` never block; sending happens in a thread."""

    def __init__(self, settings: MqttSettings, topics: Topics, discovery: dict[str, str] | None) -> None:
        self.settings = settings
        self.topics = topics
        self.discovery = discovery or {}
        self.stats = MqttStats()
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._genre: str | None = None
        self._state: str | None = None
        self._diagnostics: str | None = None
        self._sensors: dict[str, str] = {}  # tag sensor -> its latest state
        self._ready = False  # this run has a current state: `online` may go out
        self._dirty: set[str] = set()  # "availability", "discovery", "genre", "sensors", "state", "diagnostics"
        self._last_error = ""
        self._refused = False  # the last CONNACK was a refusal (auth, protocol)
        self._sending = False
        self._thread: threading.Thread | None = None
        self.client = self._make_client()

    def _make_client(self) -> mqtt.Client:
        s = self.settings
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=s.client_id, protocol=mqtt.MQTTv311, clean_session=True
        )
        if s.username:
            client.username_pw_set(s.username, s.password or None)
        if s.tls:
            client.tls_set(
                ca_certs=s.ca_file or None,
                certfile=s.cert_file or None,
                keyfile=s.key_file or None,
                cert_reqs=ssl.CERT_REQUIRED,
                tls_version=ssl.PROTOCOL_TLS_CLIENT,
            )
            if s.tls_insecure:
                client.tls_insecure_set(True)
        client.will_set(self.topics.availability, OFFLINE, qos=s.qos, retain=True)
        client.reconnect_delay_set(min_delay=max(1, round(s.reconnect_min_s)), max_delay=round(s.reconnect_max_s))
        client.max_queued_messages_set(64)  # a safety net only: the outbox keeps at most a few in flight
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        return client

    # -- paho callbacks (network thread) --------------------------------------------------

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            self._refused = True  # the broker answered; the disconnect that follows needs no second message
            self._log_error(f"broker {self.settings.host}:{self.settings.port} refused the connection: {reason}")
            return
        self._last_error = ""
        self._drop_stale(client)
        with self._cond:
            self.stats.connects += 1
            self.stats.connected = True
            self._dirty |= {"availability", "genre", "sensors", "state", "diagnostics"}
            if self.discovery:
                self._dirty.add("discovery")
            self._cond.notify_all()
        if self.discovery:
            client.subscribe(self.topics.ha_status, qos=self.settings.qos)
        log.info(
            "connected to MQTT %s:%d as %s%s",
            self.settings.host,
            self.settings.port,
            self.settings.client_id,
            f" (reconnect {self.stats.reconnects})" if self.stats.reconnects else "",
        )

    @staticmethod
    def _drop_stale(client: mqtt.Client) -> None:
        """Forget what the previous connection left unacknowledged before paho re-sends it.

        Right after this callback paho would re-send every message still waiting for its PUBACK
        (a frozen or killed broker leaves some): stale genres and states, seconds or minutes old,
        arriving as new and overwriting the retained ones. The session is clean, so the broker
        expects nothing; the outbox sends the newest value of everything now. paho has no public API
        for this.
        """
        with client._out_message_mutex:
            dropped = len(client._out_messages)
            client._out_messages.clear()
            client._inflight_messages = 0
        if dropped:
            log.info("dropped %d unacknowledged message(s) of the previous connection; sending current values", dropped)

    def _on_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        # paho calls this from inside its `except OSError`, so the reason is the exception being handled.
        exc = sys.exc_info()[1]
        reason = f"{type(exc).__name__}: {exc}" if exc is not None else "unknown reason"
        self._log_error(
            f"cannot connect to MQTT {self.settings.host}:{self.settings.port} ({reason}); "
            f"retrying every <= {self.settings.reconnect_max_s:g} s, classification continues"
        )

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        with self._cond:
            was = self.stats.connected
            self.stats.connected = False
        refused, self._refused = self._refused, False
        if self._stop.is_set():
            return
        if was:
            log.warning("MQTT connection lost (%s); reconnecting, classification continues", reason)
        elif not refused:
            # Closed before any CONNACK: typically a plain client on a TLS-only port (the broker
            # drops the bytes it cannot read as TLS), or a broker at its connection limit.
            s = self.settings
            hint = "a TLS port? set mqtt.tls = true" if not s.tls else "check the broker's log"
            self._log_error(
                f"broker {s.host}:{s.port} closed the connection before answering MQTT ({reason}; {hint}); "
                f"retrying every <= {s.reconnect_max_s:g} s, classification continues"
            )

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        # Only HA's exact birth counts; anything long is ignored before it is copied (strip/lower).
        if msg.topic == self.topics.ha_status and len(msg.payload) <= 16 and msg.payload.strip().lower() == b"online":
            log.info("Home Assistant is online: re-sending discovery")
            with self._cond:
                self._dirty.add("discovery")
                self._cond.notify_all()

    def _log_error(self, text: str) -> None:
        if text != self._last_error:  # a broker that keeps refusing must not flood the journal
            log.error("%s", text)
            self._last_error = text

    # -- API (pipeline thread) -------------------------------------------------------------

    def start(self) -> None:
        """Connect in the background; classification does not wait for the broker."""
        s = self.settings
        try:
            self.client.connect_async(s.host, s.port, keepalive=s.keepalive_s)
        except (OSError, ValueError) as exc:
            self._log_error(f"MQTT connect to {s.host}:{s.port} failed: {exc}")
        self.client.loop_start()
        self._thread = threading.Thread(target=self._run, name="mqtt-outbox", daemon=True)
        self._thread.start()

    def set_genre(self, genre: str) -> None:
        with self._cond:
            if genre != self._genre:
                self._genre = genre
                self._dirty.add("genre")
                self._cond.notify_all()

    def set_sensor(self, name: str, state: str) -> None:
        """A tag sensor's state (sent only when it changes, retained, after the genre)."""
        with self._cond:
            if self._sensors.get(name) != state:
                self._sensors[name] = state
                self._dirty.add("sensors")
                self._cond.notify_all()

    def set_state(self, payload: str) -> None:
        with self._cond:
            self._state = payload
            self._dirty.add("state")
            self._cond.notify_all()

    def set_diagnostics(self, payload: str) -> None:
        with self._cond:
            self._diagnostics = payload
            self._dirty.add("diagnostics")
            self._cond.notify_all()

    def set_ready(self) -> None:
        """This run's genre is current: send ``online`` (after the genre), now and after every reconnect."""
        with self._cond:
            self._ready = True
            self._dirty.add("availability")
            self._cond.notify_all()

    def _sendable(self) -> set[str]:
        # `online` waits for set_ready(): until then the retained genre is the previous run's, or a warm-up.
        return self._dirty if self._ready else self._dirty - {"availability"}

    def idle(self) -> bool:
        """True when connected and nothing is waiting to be sent (for flushing before exit)."""
        with self._cond:
            return self.stats.connected and not self._sendable() and not self._sending

    def _run(self) -> None:
        # Genre before state and availability: when Home Assistant sees `online`, the genre is already current.
        order = ("discovery", "genre", "sensors", "state", "availability", "diagnostics")
        while not self._stop.is_set():
            with self._cond:
                while not self._stop.is_set() and not (self._sendable() and self.stats.connected):
                    self._cond.wait(0.5)
                if self._stop.is_set():
                    return
                sendable = self._sendable()
                key = next(k for k in order if k in sendable)
                self._dirty.discard(key)
                self._sending = True
                messages = self._messages(key)
            ok = all(self._send(topic, payload) for topic, payload in messages)
            with self._cond:
                self._sending = False
                if not ok:
                    self._dirty.add(key)  # resent once connected again (the newest value by then)

    def _messages(self, key: str) -> list[tuple[str, str]]:
        if key == "availability":
            return [(self.topics.availability, ONLINE)]
        if key == "discovery":
            return list(self.discovery.items())
        if key == "genre":
            return [(self.topics.genre, self._genre)] if self._genre is not None else []
        if key == "diagnostics":
            return [(self.topics.diagnostics, self._diagnostics)] if self._diagnostics is not None else []
        if key == "sensors":
            # Every sensor's latest state: a reconnect re-sends all of them, a change resends a few bytes more.
            return [(self.topics.sensors[k], v) for k, v in self._sensors.items() if k in self.topics.sensors]
        return [(self.topics.state, self._state)] if self._state is not None else []

    def _send(self, topic: str, payload: str) -> bool:
        connects = self.stats.connects
        info = self.client.publish(topic, payload, qos=self.settings.qos, retain=True)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            return False
        deadline = time.monotonic() + ACK_TIMEOUT_S
        # Short waits: a reconnect (whose _drop_stale forgets this message) or a stop ends the wait
        # at once instead of holding the fresh values back for the whole ACK timeout.
        while not info.is_published():
            if self.stats.connects != connects or self._stop.is_set() or time.monotonic() >= deadline:
                return False
            try:
                info.wait_for_publish(timeout=0.05)
            except (RuntimeError, ValueError):
                return False
        self.stats.published += 1
        return True

    def stop(self) -> None:
        """Publish ``offline`` (if connected), disconnect cleanly; bounded to ~1.5 s in total."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=0.3)
        if self.stats.connected:
            info = self.client.publish(self.topics.availability, OFFLINE, qos=self.settings.qos, retain=True)
            try:
                info.wait_for_publish(timeout=OFFLINE_TIMEOUT_S)
            except (RuntimeError, ValueError) as exc:
                log.warning("could not publish offline: %s", exc)
        self.client.disconnect()
        # paho's thread may sit in a connect attempt to an unreachable host; never wait long for it.
        stopper = threading.Thread(target=self.client.loop_stop, name="mqtt-stop", daemon=True)
        stopper.start()
        stopper.join(timeout=0.4)
