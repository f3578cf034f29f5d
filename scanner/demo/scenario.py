"""The demo's gate and what is shown to its camera: keys, passes, badges, a personal QR
recorded without an allowlist, health certificates (test data from a throwaway signer,
made by the code behind `qrgate dcc issue`), one of them paired with an ID card.

`build_kit` makes everything a real gate has, in one folder: a signing key and the JWK
set the gate trusts, an allowlist in the store, a config, and the camera's view as a
folder of frames (each card held up for a moment, then nobody) for the replay camera.
Every step says what the gate should decide, so the demo can check itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import segno
from numpy.typing import NDArray
from PIL import Image

from scanner.config import Config, parse_config
from scanner.credentials.dcc import issue as dcc_issue
from scanner.credentials.keys import create_signing_key, generate_key, load_private_key
from scanner.credentials.passes import issue_pass
from scanner.state.store import AllowEntry, Store

FRAME_SIZE = (640, 480)
FPS = 10.0
HOLD_FRAMES = 8  # a card in view for 0.8 s
GAP_FRAMES = 3  # then nobody for 0.3 s
MODULE_PX = 4
SITE, GATE = "factory-1", "gate-1"
DAY = 86_400.0

Gray = NDArray[np.uint8]


REPEAT = "no second event (the same code within the repeat window)"


@dataclass(frozen=True)
class Step:
    """One thing shown to the camera and the event the gate should publish for it."""

    label: str
    payload: bytes
    expect: tuple[str, str] | None  # (result, reason); None: no event
    quiet: str = REPEAT  # why there is no event


@dataclass(frozen=True)
class Kit:
    folder: Path
    config: Config
    steps: tuple[Step, ...]
    first_frames: tuple[int, ...]  # frame number at which each step comes into view

    @property
    def expected(self) -> list[tuple[str, str]]:
        return [step.expect for step in self.steps if step.expect is not None]

    def step_at(self, frame_number: int) -> Step | None:
        """The step in view at a frame (1-based, as the camera counts), or None."""
        for step, first in zip(self.steps, self.first_frames, strict=True):
            if first <= frame_number < first + HOLD_FRAMES:
                return step
        return None


def build_kit(folder: Path, now: float, broker_port: int, loop: bool = False) -> Kit:
    """Keys, store, config and frames for the demo gate, all inside `folder`."""
    keys = folder / "keys"
    keys.mkdir(parents=True)
    key_path, jwks_path = create_signing_key(keys, "demo-2026", "EdDSA")
    health_signer = dcc_issue.new_signer("VN", "PS256", now=now)  # Vietnam signs PS256
    dcc_issue.save_signer(health_signer, keys / "dcc-signer")
    trust_list = keys / "dcc-signer" / dcc_issue.TRUST_LIST_NAME
    config = demo_config(folder, jwks_path, trust_list, broker_port, loop)
    fill_allowlist(config.store.path)
    steps = scenario(load_private_key(key_path), health_signer, now)
    firsts = write_frames(folder / "camera", steps)
    return Kit(folder, config, steps, firsts)


def scenario(key: Any, health_signer: dcc_issue.ThrowawaySigner, now: float) -> tuple[Step, ...]:
    """What workers show the camera, in order; passback comes last, once the repeat
    window of the first pass is over."""
    an = issue_pass(
        key, "demo-2026", "W-1042", now=now, valid_for_s=DAY, name="Nguyễn Văn An", sites=[SITE]
    ).encode()
    expired = issue_pass(
        key, "demo-2026", "W-2077", now=now - 3 * DAY, valid_for_s=DAY, name="Lê Thị Bình"
    ).encode()
    impostor = generate_key("EdDSA")  # not the gate's key, though it claims its kid
    forged = issue_pass(
        impostor, "demo-2026", "W-0001", now=now, valid_for_s=DAY, name="Giám đốc"
    ).encode()
    return (
        Step("valid pass: Nguyễn Văn An (W-1042)", an, ("granted", "ok")),
        Step("the same pass again, still held up", an, None),
        Step("expired pass: Lê Thị Bình (W-2077)", expired, ("denied", "expired")),
        Step("forged pass, signed by an unknown key", forged, ("denied", "bad_signature")),
        Step("badge not on the allowlist: V-9999", b"V-9999", ("denied", "not_allowed")),
        Step("allowlisted badge: Phạm Minh Châu (C-0007)", b"C-0007", ("granted", "ok")),
        Step(
            "personal QR (PC-COVID): Hoàng Thị Mai, on no list",
            PERSONAL_QR,
            ("granted", "recorded"),
        ),
        *paired_steps(health_signer, now),
        *health_steps(health_signer, now),
        Step(
            "a QR code that is no credential (a web link)",
            b"https://example.com/menu",
            ("denied", "unknown_format"),
        ),
        Step("W-1042's pass again, passed back to a friend", an, ("denied", "passback")),
    )


def paired_steps(signer: dcc_issue.ThrowawaySigner, now: float) -> tuple[Step, ...]:
    """A vaccine passport and the holder's ID card, one after the other: one passage."""
    today = datetime.fromtimestamp(now, UTC)
    vaccinated = dcc_issue.vaccination_entry("VN", (today - timedelta(days=60)).date(), 3, 2)
    content = dcc_issue.content("Trần", "Văn Dũng", "1990-01-01", "v", vaccinated)
    passport = dcc_issue.issue_certificate(
        signer, content, issued_at=now - 50 * DAY, expires_at=now + 300 * DAY
    )
    return (
        Step(
            "vaccine passport (VN, PS256): Trần Văn Dũng, booster",
            passport.encode(),
            None,
            "no event yet: the LEDs ask for the second code",
        ),
        Step("then his chip ID card (CCCD): the same person", ID_CARD, ("granted", "ok")),
    )


def health_steps(signer: dcc_issue.ThrowawaySigner, now: float) -> tuple[Step, ...]:
    """Health certificates denied at once: expired, forged, a test too old for the rules."""
    today = datetime.fromtimestamp(now, UTC)

    def certificate(
        by: dcc_issue.ThrowawaySigner, group: dcc_issue.TypeKey, entry: dict[str, Any], days: float
    ) -> bytes:
        content = dcc_issue.content("Nguyễn", "Thị Hoa", "1992-04-30", group, entry)
        text = dcc_issue.issue_certificate(
            by, content, issued_at=now - 40 * DAY, expires_at=now + days * DAY, kid=signer.kid
        )
        return text.encode()

    vaccinated = dcc_issue.vaccination_entry("VN", (today - timedelta(days=30)).date(), 2, 2)
    old_test = dcc_issue.covid_test_entry("VN", today - timedelta(hours=30))
    forger = dcc_issue.new_signer("VN", "ES256", now=now)  # claims the trusted signer's kid
    return (
        Step(
            "expired health certificate",
            certificate(signer, "v", vaccinated, -1),
            ("denied", "expired"),
        ),
        Step(
            "forged health certificate, signed by an unknown key",
            certificate(forger, "v", vaccinated, 300),
            ("denied", "bad_signature"),
        ),
        Step(
            "rapid test taken 30 h ago (24 h allowed)",
            certificate(signer, "t", old_test, 2),
            ("denied", "test_too_old"),
        ),
    )


ID_CARD = "001099012345|123456789|Trần Văn Dũng|01011990|Nam|Lào Cai|15062021".encode()
PERSONAL_QR = b"******058123|HOANG THI MAI|1995-**-**|0|163512345678901234|<2<HS401012*****"


def demo_config(folder: Path, jwks: Path, trust_list: Path, broker_port: int, loop: bool) -> Config:
    return parse_config(
        {
            "gate": {"site": SITE, "id": GATE, "direction": "in"},
            "camera": {
                "source": f"replay:{folder / 'camera'}",
                "fps": FPS,
                "replay_loop": loop,
                "stall_s": 3.0,
            },
            "gpio": {"pin_factory": "mock", "relay_pulse_ms": 800},
            "policy": {
                "accept": ["pass", "badge", "cccd", "vnqr", "dcc"],
                "record_only": ["vnqr"],
                "repeat_window_s": 3.0,
                "anti_passback_s": 60.0,
            },
            "passes": {"jwks": str(jwks)},
            "dcc": {"trust_list": str(trust_list), "pair_with": ["cccd"], "pair_window_s": 10.0},
            "store": {"path": str(folder / "state" / "qrgate.db")},
            "mqtt": {
                "host": "127.0.0.1",
                "port": broker_port,
                "heartbeat_s": 2.0,
                "retry_min_s": 0.5,
                "retry_max_s": 2.0,
            },
            "commands": {"enabled": False},
            "log": {"level": "warning"},
        },
        base_dir=folder,
    )


def fill_allowlist(store_path: Path) -> None:
    store_path.parent.mkdir(parents=True, exist_ok=True)
    with Store.open(store_path) as store:
        store.allowlist.add(AllowEntry("C-0007", "Phạm Minh Châu", frozenset({"badge"})))
        store.allowlist.add(AllowEntry("001099012345", "Trần Văn Dũng", frozenset({"cccd"})))


def write_frames(folder: Path, steps: tuple[Step, ...]) -> tuple[int, ...]:
    """The camera's view, one PNG per frame in name order; the first frame of each step."""
    folder.mkdir(parents=True)
    scene = background(FRAME_SIZE)
    frames: list[Gray] = [scene] * GAP_FRAMES
    firsts = []
    for index, step in enumerate(steps):
        firsts.append(len(frames) + 1)
        frames += [card_frame(scene, step.payload, tilt=(-1) ** index * 4.0)] * HOLD_FRAMES
        frames += [scene] * GAP_FRAMES
    for number, frame in enumerate(frames, start=1):
        Image.fromarray(frame).save(folder / f"{number:04d}.png", compress_level=1)
    return tuple(firsts)


def background(size: tuple[int, int]) -> Gray:
    """A dim gate scene: a lighting gradient and a doorway."""
    width, height = size
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    scene: NDArray[np.float64] = 70 + 50 * xs / width + 20 * np.cos(ys / height * math.pi)
    scene[40:440, 60:180] -= 35  # the doorway
    return scene.clip(0, 255).astype(np.uint8)


def card_frame(scene: Gray, payload: bytes, tilt: float) -> Gray:
    """The scene with a phone or badge held up, showing `payload` as a QR code."""
    code = qr_image(payload)
    card = Image.new("L", (code.width + 40, code.height + 40), 235)
    card.paste(code, (20, 20))
    mask = Image.new("L", card.size, 255)
    card = card.rotate(tilt, resample=Image.Resampling.BILINEAR, expand=True, fillcolor=0)
    mask = mask.rotate(tilt, resample=Image.Resampling.BILINEAR, expand=True, fillcolor=0)
    frame = Image.fromarray(scene)
    frame.paste(
        card, ((frame.width - card.width) // 2 + 60, (frame.height - card.height) // 2), mask
    )
    return np.asarray(frame, dtype=np.uint8)


def qr_image(payload: bytes) -> Image.Image:
    code = segno.make_qr(payload, error="m")
    rows = np.array(list(code.matrix_iter(scale=MODULE_PX, border=4)), dtype=bool)
    return Image.fromarray(np.where(rows, 30, 235).astype(np.uint8))
