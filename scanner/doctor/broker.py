"""Doctor's broker check: connect as the gate would (host, port, TLS, login, protocol) and
wait for the broker's answer, then say in words what failed and what to change.

The check logs in with the gate's client id plus "-doctor": a broker drops a client when
another connects with the same id, and the running gate must not be the one dropped.
"""

from __future__ import annotations

import queue
import socket
import ssl
import time
from dataclasses import replace

from mqtt.link import Connected, LinkError, Lost, Signal, Waker, tls_context
from mqtt.settings import BrokerSettings
from scanner.config import Config
from scanner.doctor.finding import Finding, failure, passed
from scanner.errors import ConfigError
from scanner.mqttconfig import broker_settings

# Seconds to connect and get the broker's answer (CONNACK), at most.
BROKER_TIMEOUT_S = 5.0
PUMP_S = 0.1
CLIENT_SUFFIX = "-doctor"

NOT_TLS_FIX = (
    "that port may not speak TLS: check mqtt.port (8883 is usual), or set mqtt.tls = false"
)
CA_FIX = "check that mqtt.ca_file is the CA that signed the broker's certificate"
TLS_FILES_FIX = (
    "check that mqtt.ca_file, mqtt.cert_file and mqtt.key_file are PEM files, and that the "
    "key belongs to the certificate"
)
# What to do when the broker refuses the login, by the reason it gives (MQTT 5 names; paho
# gives MQTT 3.1.1's return codes the same names).
REFUSAL_FIXES = {
    "Bad user name or password": "check mqtt.username and the password in mqtt.password_file",
    "Not authorized": (
        "check mqtt.username and the password in mqtt.password_file, and that the broker "
        "lets this user in"
    ),
    "Client identifier not valid": "check mqtt.client_id (the broker refuses it)",
    "Unsupported protocol version": 'the broker does not speak MQTT 5: set mqtt.protocol = "v311"',
    "Banned": "the broker has banned this client: ask its administrator",
}
LOGIN_NEEDED = {"Bad user name or password", "Not authorized"}


def check_broker(config: Config) -> Finding:
    try:
        settings = broker_settings(config)
    except ConfigError as error:
        return failure("; ".join(map(str, error.problems)), "fix the file the key names")
    settings = replace(
        settings,
        client_id=settings.client_id + CLIENT_SUFFIX,
        connect_timeout_s=min(settings.connect_timeout_s, BROKER_TIMEOUT_S),
    )
    if settings.tls is not None:
        try:
            tls_context(settings.tls)
        except LinkError as error:
            return failure(str(error), TLS_FILES_FIX)
    start = time.monotonic()
    try:
        answer = ask(settings, BROKER_TIMEOUT_S)
    except LinkError as error:
        detail, fix = connect_problem(error, settings)
        return failure(f"cannot connect to {settings.host}:{settings.port} ({detail})", fix)
    return answer_finding(answer, settings, time.monotonic() - start)


def ask(settings: BrokerSettings, timeout_s: float) -> Connected | Lost | None:
    """Connect and wait for the broker's answer: `Connected` (accepted or refused), `Lost`
    when it closed the connection first, None when nothing came within `timeout_s`.
    Raises LinkError when no connection could be opened."""
    from mqtt.link import Link

    signals: queue.Queue[Signal] = queue.Queue()
    link, waker = Link(settings, signals, number=1), Waker()
    try:
        link.open()
        deadline = time.monotonic() + timeout_s
        while (left := deadline - time.monotonic()) > 0:
            link.pump(min(left, PUMP_S), waker)
            while not signals.empty():
                signal = signals.get_nowait()
                if isinstance(signal, Connected | Lost):
                    return signal
        return None
    finally:
        link.close()
        waker.close()


def answer_finding(
    answer: Connected | Lost | None, settings: BrokerSettings, took_s: float
) -> Finding:
    where = f"{settings.host}:{settings.port}"
    if answer is None:
        return failure(
            f"{where} gave no MQTT answer within {BROKER_TIMEOUT_S:g} s",
            "check that mqtt.port is the broker's MQTT port, and mqtt.tls (true for a TLS port)",
        )
    if isinstance(answer, Lost):
        return failure(
            f"{where} closed the connection before answering ({answer.reason})",
            "if that port takes TLS, set mqtt.tls = true; otherwise see the broker's log",
        )
    if answer.refused is not None:
        return failure(
            f"{where} refused {settings.client_id}: {answer.refused}",
            refusal_fix(answer.refused, settings),
        )
    return passed(f"{settings.address} accepted {login(settings)} in {took_s * 1000:.0f} ms")


def refusal_fix(reason: str, settings: BrokerSettings) -> str:
    if reason in LOGIN_NEEDED and settings.username is None:
        return "the broker wants a login: set mqtt.username and mqtt.password_file"
    return REFUSAL_FIXES.get(reason, "ask the broker's administrator why it refuses this gate")


def login(settings: BrokerSettings) -> str:
    protocol = "MQTT 5" if settings.protocol == "v5" else "MQTT 3.1.1"
    user = f", user {settings.username}" if settings.username else ""
    return f"{settings.client_id} ({protocol}{user})"


def connect_problem(error: LinkError, settings: BrokerSettings) -> tuple[str, str]:
    """What failed while connecting, in words, and the fix.

    Link raises `from None`, to keep its one-line message; the exception that caused
    it is still its __context__.
    """
    cause = error.__cause__ or error.__context__
    match cause:
        case ssl.SSLCertVerificationError():
            found = f"TLS: {cause.verify_message}", certificate_fix(cause.verify_message)
        case ssl.SSLError():
            found = f"TLS: {cause.reason or cause}", tls_fix(str(cause.reason))
        case ConnectionResetError() if settings.tls is not None:
            found = "reset during the TLS handshake", NOT_TLS_FIX
        case ConnectionRefusedError():
            found = (
                "connection refused",
                ("nothing listens there: check mqtt.host and mqtt.port, and that the broker runs"),
            )
        case socket.gaierror():
            found = f"unknown host: {cause.strerror}", "check mqtt.host and the gate's DNS"
        case TimeoutError():
            found = (
                f"no answer within {settings.connect_timeout_s:g} s",
                ("check the network between the gate and the broker, and firewalls"),
            )
        case OSError():
            found = str(cause.strerror or cause), "check the gate's network (ip address, ip route)"
        case _:
            found = str(error), "check the [mqtt] settings"
    return found


def certificate_fix(message: str) -> str:
    if "mismatch" in message:
        return "set mqtt.host to the name (or address) the broker's certificate is issued for"
    if "expired" in message or "not yet valid" in message:
        return "the broker's certificate is out of date, or this gate's clock is wrong"
    return CA_FIX


def tls_fix(reason: str) -> str:
    if "WRONG_VERSION_NUMBER" in reason or "RECORD_LAYER" in reason:
        return (
            "that port does not speak TLS: check mqtt.port (8883 is usual), or set mqtt.tls = false"
        )
    if "CERTIFICATE_REQUIRED" in reason or "BAD_CERTIFICATE" in reason or "UNKNOWN_CA" in reason:
        return (
            "the broker wants a client certificate it trusts: set mqtt.cert_file and mqtt.key_file"
        )
    return "check the broker's TLS settings against mqtt.ca_file, mqtt.cert_file and mqtt.key_file"
