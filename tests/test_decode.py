"""The decoders on real images: exact bytes, hard conditions, the layered strategy."""

from __future__ import annotations

import itertools
import logging
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import segno
import zxingcpp
from PIL import Image
from pyzbar import pyzbar

from scanner.vision.decode import (
    Budget,
    Code,
    DecodeError,
    Decoder,
    LayeredDecoder,
    ZbarReader,
    crop_boxes,
    make_decoder,
)
from tests.support.frames import Gray, Look, damaged_frame, empty_frame, render_qr
from tests.support.hard_frames import HardFrame, exposed, hard_frames

DATA = Path(__file__).parent / "data" / "qr"

PAYLOADS = {
    "binary": bytes([0, 1, 2, 0x7F, 0x80, 0xC3, 0x28, 0xFE, 0xFF]) + b" raw",
    "latin-1": "Müller, Ærø".encode("latin-1"),
    "utf-8": "Nguyễn Văn Anh|Lào Cai".encode(),
    "utf-8 short": "Müller".encode(),
    "jwt": b"eyJhbGciOiJFZERTQSIsImtpZCI6ImsxIn0.eyJzdWIiOiJXLTEwNDIifQ.c2lnbmF0dXJl",
}


def payloads(decoder: Decoder, image: Gray) -> list[bytes]:
    return [code.payload for code in decoder.decode(image)]


@pytest.fixture(scope="module")
def still() -> Decoder:
    return make_decoder("auto")


@pytest.fixture(scope="module")
def hard_set() -> list[tuple[HardFrame, Gray]]:
    """Five frames of each hard condition (not the benchmark's), rendered once."""
    return [(frame, frame.render()) for frame in hard_frames(5, seed=7)]


@pytest.mark.parametrize("kind", PAYLOADS)
@pytest.mark.parametrize("name", ["auto", "zxing", "pyzbar"])
def test_exact_bytes_on_every_backend(name: str, kind: str) -> None:
    payload = PAYLOADS[kind]
    frame = render_qr(payload, (320, 240), Look(module_px=3))
    [code] = make_decoder(name).decode(frame)  # type: ignore[arg-type]
    assert code.payload == payload
    assert code.text == (payload.decode() if kind.startswith(("utf-8", "jwt")) else None)


@pytest.mark.parametrize("name", ["zxing", "pyzbar"])
def test_eci_codes_give_the_bytes_as_encoded(name: str) -> None:
    """A code declaring its charset (ECI) gives its bytes in that charset, on both backends."""
    code = segno.make_qr("Müller", encoding="iso-8859-1", eci=True)
    modules = np.array(list(code.matrix_iter(scale=4, border=4)), dtype=bool)
    [read] = make_decoder(name).decode(np.where(modules, 20, 230).astype(np.uint8))  # type: ignore[arg-type]
    assert (read.payload, read.text) == (b"M\xfcller", None)


@pytest.mark.parametrize("kind", ["latin-1", "utf-8 short"])
def test_bare_pyzbar_garbles_what_our_zbar_reader_keeps(kind: str) -> None:
    """The reason for ZbarReader: zbar's text mode re-encodes the payload."""
    payload = PAYLOADS[kind]
    frame = render_qr(payload, (320, 240), Look(module_px=3))
    [garbled] = pyzbar.decode(frame, symbols=[pyzbar.ZBarSymbol.QRCODE])
    assert garbled.data != payload
    assert payloads(ZbarReader(), frame) == [payload]


def test_text_is_none_only_for_invalid_utf8() -> None:
    corners = ((0, 0), (1, 0), (1, 1), (0, 1))
    assert Code.of(b"\xff\xfe", corners, "zxing").text is None
    assert Code.of(b"a\x00b", corners, "zxing").text == "a\x00b"


# (look, exposure gain of the whole frame)
CONDITIONS = {
    "1.5 px modules": (Look(module_px=1.5, noise=2), 1.0),
    "rotated 45": (Look(angle=45), 1.0),
    "tilted 55": (Look(module_px=3, tilt=55), 1.0),
    "defocused": (Look(module_px=3, blur=1.3), 1.0),
    "moving": (Look(module_px=4, motion=8, motion_angle=30), 1.0),
    "low light": (Look(noise=2), 0.06),
    "over-exposed": (Look(dark=170, light=255, noise=2), 1.0),
    "glare": (Look(module_px=3, glare=0.8), 1.0),
    "inverted": (Look(module_px=3, invert=True), 1.0),
}


@pytest.mark.parametrize(("look", "gain"), CONDITIONS.values(), ids=CONDITIONS.keys())
def test_reads_under_hard_conditions(still: Decoder, look: Look, gain: float) -> None:
    payload = PAYLOADS["jwt"]
    [code] = still.decode(exposed(render_qr(payload, look=look, seed=5), gain, look.noise))
    assert code.payload == payload
    centre_x = sum(x for x, _ in code.position) / 4
    centre_y = sum(y for _, y in code.position) / 4
    assert abs(centre_x - 320) < 12
    assert abs(centre_y - 240) < 12


@pytest.mark.parametrize("name", ["auto", "pyzbar"])
def test_empty_frames_hold_no_code(name: str) -> None:
    decoder = make_decoder(name)  # type: ignore[arg-type]
    for seed in range(3):
        assert decoder.decode(empty_frame(seed=seed, noise=4)) == []


def test_still_decoder_reads_every_code_in_the_frame(still: Decoder) -> None:
    left = render_qr(b"W-00001", (320, 240), Look(module_px=3), seed=1)
    right = render_qr(b"W-00002", (320, 240), Look(module_px=3, angle=20), seed=2)
    assert sorted(payloads(still, np.hstack([left, right]))) == [b"W-00001", b"W-00002"]


@pytest.mark.slow
def test_reads_at_least_the_union_of_both_backends(
    still: Decoder, hard_set: list[tuple[HardFrame, Gray]]
) -> None:
    zbar = ZbarReader()
    ours = either = 0
    for frame, image in hard_set:
        read = set(payloads(still, image))
        alone = {result.bytes for result in zxingcpp.read_barcodes(image)}
        alone |= set(payloads(zbar, image))
        assert alone <= read, frame.name
        ours += frame.payload in read
        either += frame.payload in alone
    assert ours > either


def test_zbar_reader_finds_what_bare_pyzbar_finds(hard_set: list[tuple[HardFrame, Gray]]) -> None:
    zbar = ZbarReader()
    for frame, image in hard_set:
        bare = pyzbar.decode(image, symbols=[pyzbar.ZBarSymbol.QRCODE])
        assert len(zbar.decode(image)) == len(bare), frame.name


@pytest.mark.parametrize("path", sorted(DATA.glob("*.png")), ids=lambda path: path.stem)
def test_reads_the_corpus_samples(still: Decoder, path: Path) -> None:
    image = np.asarray(Image.open(path).convert("L"))
    assert path.with_suffix(".txt").read_bytes() in payloads(still, image)


class CountingZbar(ZbarReader):
    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def decode(self, image: Gray) -> list[Code]:
        self.calls += 1
        return super().decode(image)


def ticking(step: float) -> Callable[[], float]:
    """A clock that advances by `step` at every reading."""
    return itertools.count(step=step).__next__  # type: ignore[return-value]


def test_live_decoder_stops_once_the_first_pass_reads() -> None:
    zbar = CountingZbar()
    live = LayeredDecoder(zbar, Budget(1.0, clock=ticking(1.0)))
    frame = render_qr(PAYLOADS["jwt"], (320, 240), Look(module_px=3))
    assert payloads(live, frame) == [PAYLOADS["jwt"]]
    assert (live.second_looks, zbar.calls) == (0, 0)


def test_live_second_look_keeps_to_its_share() -> None:
    """At 30 fps for 10 s with a 10 % share, second looks of 5 ms fit 200 times."""
    zbar = CountingZbar()
    budget = Budget(0.1, clock=ticking(1 / 30))
    live = LayeredDecoder(zbar, budget, clock=ticking(0.005))
    frame = damaged_frame((160, 120))  # located every time, never read
    for _ in range(300):
        assert live.decode(frame) == []
    assert live.first_passes == 300
    assert 195 <= live.second_looks <= 202
    assert zbar.calls == live.second_looks


def nothing_located() -> list[Gray]:
    """Frames that show no evidence of a code: scenes with noise, flat, dim, over-exposed."""
    return [
        *(empty_frame((320, 240), seed=seed, noise=noise) for seed, noise in enumerate((0, 3, 8))),
        np.full((240, 320), 128, np.uint8),
        exposed(empty_frame((320, 240), seed=4), 0.06, 2.0),
        exposed(empty_frame((320, 240), seed=5), 1.8, 2.0),
    ]


@pytest.fixture(scope="module")
def unseen_code(hard_set: list[tuple[HardFrame, Gray]]) -> tuple[bytes, Gray]:
    """A steeply tilted code the first pass does not even locate; the fixed-threshold
    binarizer of a second look reads it."""
    [(frame, image)] = [(frame, image) for frame, image in hard_set if frame.name == "tilt-04"]
    return frame.payload, image


def test_frame_without_evidence_of_a_code_never_gets_a_second_look(
    unseen_code: tuple[bytes, Gray],
) -> None:
    zbar = CountingZbar()
    live = LayeredDecoder(zbar, Budget(1.0, clock=ticking(1.0)))  # the budget always allows
    for frame in [*nothing_located(), unseen_code[1]] * 3:
        assert live.decode(frame) == []
    assert (live.first_passes, live.second_looks, zbar.calls) == (21, 0, 0)
    assert not live.evidence
    live.decode(damaged_frame())  # evidence: a symbol located but not read
    assert (live.evidence, live.second_looks, zbar.calls) == (True, 1, 1)


def test_still_decoder_looks_twice_at_every_frame(unseen_code: tuple[bytes, Gray]) -> None:
    zbar = CountingZbar()
    still = LayeredDecoder(zbar)
    payload, image = unseen_code
    assert payloads(still, image) == [payload]  # what the live decoder gives up
    assert (still.second_looks, zbar.calls) == (1, 1)


def test_live_decoder_with_time_to_spare_reads_what_the_still_one_reads_where_it_sees_a_code(
    still: Decoder, hard_set: list[tuple[HardFrame, Gray]]
) -> None:
    live = LayeredDecoder(ZbarReader(), Budget(1.0, clock=ticking(1.0)))
    given_up = 0
    for frame, image in hard_set:
        read = frame.payload in payloads(live, image)
        if live.evidence:
            assert read == (frame.payload in payloads(still, image)), frame.name
        else:
            given_up += frame.payload in payloads(still, image)
    assert given_up <= 1  # the price of second looks on evidence only, see docs/scanning.md


def test_dim_frame_is_read_by_the_first_pass() -> None:
    """zxing-cpp takes contrast under 24 grey levels for flat: the first pass stretches
    the levels of a dim frame, so no second look is needed (the budget allows none)."""
    live = LayeredDecoder(None, Budget(0.0))
    frame = exposed(render_qr(PAYLOADS["jwt"], look=Look(noise=2), seed=5), 0.06, 2.0)
    assert float(np.percentile(frame, 99)) < 24
    assert payloads(live, frame) == [PAYLOADS["jwt"]]
    assert live.second_looks == 0


def test_live_decoder_loads_zbar_when_a_second_look_first_needs_it(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(sys.modules, "pyzbar", None)  # as if libzbar0 were not installed
    live = make_decoder("auto", live_share=1.0)
    with caplog.at_level(logging.WARNING):
        assert live.decode(empty_frame((160, 120))) == []
        assert "libzbar0" not in caplog.text  # nothing needed zbar yet
        for _ in range(3):
            assert live.decode(damaged_frame()) == []
    assert caplog.text.count("decoding with zxing-cpp only") == 1
    assert "install libzbar0" in caplog.text
    code = render_qr(PAYLOADS["jwt"], (320, 240), Look(module_px=3))
    assert payloads(live, code) == [PAYLOADS["jwt"]]


def test_budget_refuses_while_spent_and_recovers_with_time() -> None:
    now = [0.0]
    budget = Budget(0.5, clock=lambda: now[0])
    assert budget.allows()
    budget.spend(0.1)
    assert not budget.allows()
    now[0] = 0.2
    assert budget.allows()
    assert not Budget(0.0, clock=lambda: now[0]).allows()
    with pytest.raises(ValueError, match="share"):
        Budget(1.5)


def test_auto_without_zbar_decodes_with_zxing_only(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(sys.modules, "pyzbar", None)
    with caplog.at_level(logging.WARNING):
        decoder = make_decoder("auto")
    assert decoder.name == "zxing"
    assert "install libzbar0" in caplog.text
    with pytest.raises(DecodeError, match="libzbar0"):
        make_decoder("pyzbar")


def test_unknown_decoder_name_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown decoder 'opencv'"):
        make_decoder("opencv")  # type: ignore[arg-type]


def test_rejects_colour_images(still: Decoder) -> None:
    with pytest.raises(ValueError, match="2-D uint8"):
        still.decode(np.zeros((10, 10, 3), np.uint8))


def test_crop_boxes_frame_each_located_symbol_once() -> None:
    small = ((100, 100), (120, 100), (120, 120), (100, 120))
    nudged = tuple((x + 3, y + 2) for x, y in small)
    at_the_edge = ((0, 0), (30, 0), (30, 30), (0, 30))
    speck = ((5, 5), (6, 5), (6, 6), (5, 6))
    boxes = crop_boxes((480, 640), [small, nudged, at_the_edge, speck])
    assert boxes == [(80, 80, 141, 141), (0, 0, 61, 61)]
    huge = ((0, 0), (1500, 0), (1500, 1000), (0, 1000))
    assert crop_boxes((3000, 4000), [huge]) == []
