"""Signed events: the gate's key, the signed form as docs/mqtt.md specifies it (checked
with openssl, not with our code), and the monitor's verdict on what it receives."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import pwd
import re
import subprocess
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from monitor.intake.enrollment import EnrolledKey, Enrollment
from monitor.intake.ingest import EventRecord, Rejected, classify
from mqtt.errors import EventKeyError
from mqtt.outbox import Outbox
from mqtt.signing import EventSigner, create_key, public_text
from tests.support.broker import Mosquitto
from tests.support.gate import SITE, publisher_for
from tests.support.recorder import Recorder

TOPIC = f"qrgate/{SITE}/gate-1/events"
# DER of an Ed25519 SubjectPublicKeyInfo, before the 32 raw bytes (RFC 8410).
ED25519_SPKI_PREFIX = bytes.fromhex("302a300506032b6570032100")


def b64url_decode(text: bytes) -> bytes:
    return base64.urlsafe_b64decode(text + b"=" * (-len(text) % 4))


def signed_outbox(tmp_path: Path, name: str = "gate") -> Outbox:
    signer = EventSigner.load_or_create(tmp_path / name / "event-key.pem")
    return Outbox(tmp_path / name / "qrgate.db", SITE, "gate-1", "in", signer=signer)


def append_scan(outbox: Outbox, subject: str = "W-1", name: str = "Nguyễn Văn A") -> None:
    outbox.append(
        "scan", ts=time.time(), result="granted", reason="ok", credential="badge",
        subject=subject, name=name, code_sha256="ab" * 32, latency_ms=1.25,
    )  # fmt: skip


def openssl_verifies(folder: Path, public_x: str, body: bytes, signature: bytes) -> bool:
    """What a consumer without our code does: openssl over the documented bytes."""
    raw = b64url_decode(public_x.encode())
    pem = b"-----BEGIN PUBLIC KEY-----\n"
    pem += base64.b64encode(ED25519_SPKI_PREFIX + raw) + b"\n-----END PUBLIC KEY-----\n"
    (folder / "pub.pem").write_bytes(pem)
    (folder / "body").write_bytes(body)
    (folder / "sig").write_bytes(signature)
    done = subprocess.run(
        ["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", "pub.pem", "-rawin",
         "-in", "body", "-sigfile", "sig"],
        cwd=folder, capture_output=True, check=False,
    )  # fmt: skip
    return done.returncode == 0


def test_the_signed_form_is_what_docs_mqtt_md_says(tmp_path: Path) -> None:
    outbox = signed_outbox(tmp_path)
    append_scan(outbox)
    (row,) = outbox.pending()
    published = row.payload
    # Documented: the last 96 bytes are ,"sig":" + 86 base64url characters + "}
    suffix = published[-96:]
    assert suffix[:8] == b',"sig":"'
    assert suffix[-2:] == b'"}'
    body, signature = published[:-96] + b"}", b64url_decode(suffix[8:-2])
    assert len(signature) == 64
    assert json.loads(published)["sig"] == suffix[8:-2].decode()  # the last member, plain JSON
    # kid is the RFC 7638 thumbprint of the public key, inside what is signed.
    assert outbox.signer is not None
    x = public_text(outbox.signer.public)
    thumbprint = json.dumps({"crv": "Ed25519", "kty": "OKP", "x": x}, separators=(",", ":"))
    kid = base64.urlsafe_b64encode(hashlib.sha256(thumbprint.encode()).digest()).rstrip(b"=")
    assert json.loads(body)["kid"] == kid.decode()
    assert "sig" not in json.loads(body)
    assert openssl_verifies(tmp_path, x, body, signature)
    tampered = body.replace(b'"W-1"', b'"W-2"')
    assert not openssl_verifies(tmp_path, x, tampered, signature)
    outbox.close()


def test_the_key_is_made_once_kept_private_and_signs_the_stored_bytes(tmp_path: Path) -> None:
    path = tmp_path / "state" / "event-key.pem"
    first = EventSigner.load_or_create(path)
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert not create_key(path)  # another process racing: the existing key stays
    assert EventSigner.load_or_create(path).kid == first.kid
    assert [p.name for p in path.parent.iterdir()] == ["event-key.pem"]  # no temporary left
    private = serialization.load_pem_private_key(path.read_bytes(), None)
    assert public_text(private.public_key()) == public_text(first.public)  # type: ignore[arg-type]


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can hand a file to another user")
def test_a_key_made_by_root_belongs_to_its_folder_s_owner_when_it_appears(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    service = pwd.getpwnam("nobody")
    os.chown(state, service.pw_uid, service.pw_gid)
    key = state / "event-key.pem"
    assert create_key(key)
    status = key.stat()
    assert (status.st_uid, status.st_gid) == (service.pw_uid, service.pw_gid)
    assert status.st_mode & 0o777 == 0o600
    assert list(state.iterdir()) == [key]  # the temporary file is gone


def test_a_resend_carries_the_bytes_signed_at_append(
    mosquitto: Mosquitto, tmp_path: Path, running: list[object]
) -> None:
    outbox = signed_outbox(tmp_path)
    for n in range(20):
        append_scan(outbox, subject=f"W-{n}")
    stored = [row.payload for row in outbox.pending(limit=100)]
    outbox.close()
    reopened = signed_outbox(tmp_path)  # the gate restarted: nothing is signed again
    assert [row.payload for row in reopened.pending(limit=100)] == stored
    recorder = Recorder(mosquitto, TOPIC).start()
    publisher = publisher_for(mosquitto, reopened)
    running.append(publisher)
    publisher.start()
    assert recorder.wait(lambda r: len(r.on("events")) >= 20)
    assert [message.payload for message in recorder.on("events")] == stored
    recorder.stop()


# ---- the monitor's verdict ------------------------------------------------------------


@pytest.fixture
def gate_and_forger(tmp_path: Path) -> tuple[Outbox, Outbox, Enrollment]:
    gate, forger = signed_outbox(tmp_path, "gate"), signed_outbox(tmp_path, "forger")
    assert gate.signer is not None
    key = EnrolledKey.make(SITE, "gate-1", public_text(gate.signer.public), 0)
    return gate, forger, Enrollment.of([key])


def payload_of(outbox: Outbox, subject: str = "W-1") -> bytes:
    append_scan(outbox, subject=subject)
    return outbox.pending(limit=1000)[-1].payload


def verdict(payload: bytes, enrollment: Enrollment) -> EventRecord | Rejected:
    record = classify("qrgate", TOPIC, payload, 0, enrollment)
    assert isinstance(record, EventRecord | Rejected)
    return record


def test_an_enrolled_gate_s_own_events_verify(
    gate_and_forger: tuple[Outbox, Outbox, Enrollment],
) -> None:
    gate, _, enrollment = gate_and_forger
    record = verdict(payload_of(gate), enrollment)
    assert isinstance(record, EventRecord)
    assert gate.signer is not None
    assert record.kid == gate.signer.kid
    assert record.event.sig is None  # read from the signed bytes
    assert record.extra is None


def test_what_the_gate_did_not_sign_is_set_aside_with_the_reason(
    gate_and_forger: tuple[Outbox, Outbox, Enrollment],
) -> None:
    gate, forger, enrollment = gate_and_forger
    genuine = payload_of(gate, "W-7")
    forged_seq = re.sub(rb'"seq":\d+,', b'"seq":1000000000000000,', genuine)
    assert forged_seq != genuine
    cases = {
        "unsigned event from factory-1/gate-1, an enrolled gate": strip_sig(genuine),
        "not enrolled for factory-1/gate-1": payload_of(forger, "INTRUDER"),
        "signature does not verify": genuine.replace(b'"W-7"', b'"W-8"'),
        "signature does not verify with": forged_seq,
        "sig: not the signed form": genuine[:-1] + b',"extra":1}',
    }
    for reason, payload in cases.items():
        record = verdict(payload, enrollment)
        assert isinstance(record, Rejected), reason
        assert reason in record.reason


def strip_sig(payload: bytes) -> bytes:
    return payload[:-96] + b"}"


def test_a_gate_not_enrolled_is_stored_unauthenticated_or_refused_when_required(
    gate_and_forger: tuple[Outbox, Outbox, Enrollment],
) -> None:
    gate, forger, _ = gate_and_forger
    for payload in (payload_of(forger), strip_sig(payload_of(gate))):
        record = verdict(payload, Enrollment())
        assert isinstance(record, EventRecord)
        assert not record.authenticated
        refused = verdict(payload, Enrollment(required=True))
        assert isinstance(refused, Rejected)
        assert "is not enrolled (--enrolled-only)" in refused.reason


def test_a_malformed_public_key_is_refused() -> None:
    for text in ("", "x" * 43 + "=", "A" * 44, "not base64url at all, nope, 43 chars long!"):
        with pytest.raises(ValueError, match="43 base64url characters"):
            EnrolledKey.make("f1", "g1", text, 0)


def test_a_stored_key_that_is_no_key_trusts_nothing(
    gate_and_forger: tuple[Outbox, Outbox, Enrollment],
) -> None:
    gate, _, _ = gate_and_forger
    assert gate.signer is not None
    spoiled = EnrolledKey(SITE, "gate-1", gate.signer.kid, "edited by hand", 0)
    enrollment = Enrollment.of([spoiled])
    assert enrollment.enrolled(SITE, "gate-1")
    record = verdict(payload_of(gate), enrollment)
    assert isinstance(record, Rejected)
    assert "not enrolled for factory-1/gate-1" in record.reason


def test_a_damaged_key_says_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "event-key.pem"
    path.write_bytes(b"-----BEGIN PRIVATE KEY-----\nbit rot\n-----END PRIVATE KEY-----\n")
    with pytest.raises(EventKeyError, match=r"is damaged .*move it away to make a new one"):
        EventSigner.load_or_create(path)
