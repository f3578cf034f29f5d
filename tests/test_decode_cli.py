"""`qrgate decode`: one JSON object per image, in order, errors included, exit codes."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from scanner.cli import run
from tests.support.frames import Look, empty_frame, render_qr, save_png

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data" / "qr"


def decode_json(
    capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, list[dict[str, object]]]:
    code = run(["decode", "--json", *args])
    lines = capsys.readouterr().out.splitlines()
    return code, [json.loads(line) for line in lines]


def payload_of(document: dict[str, object]) -> list[bytes]:
    codes = document["codes"]
    assert isinstance(codes, list)
    return [base64.b64decode(code["bytes_b64"]) for code in codes]


def test_a_folder_gives_one_correct_line_per_image(capsys: pytest.CaptureFixture[str]) -> None:
    code, documents = decode_json(capsys, str(DATA))
    images = sorted(DATA.glob("*.png"), key=lambda path: path.name)
    assert code == 0
    assert [document["file"] for document in documents] == [str(path) for path in images]
    for document, image in zip(documents, images, strict=True):
        assert set(document) == {"file", "codes", "ms"}
        assert payload_of(document) == [image.with_suffix(".txt").read_bytes()]
        assert isinstance(document["ms"], float)
        assert document["ms"] > 0


def test_unreadable_files_keep_their_place_and_fail_the_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("not an image")
    good = DATA / "set6-3.png"
    code, documents = decode_json(capsys, str(notes), str(good), str(tmp_path / "gone.png"))
    assert code == 1
    assert [document["file"] for document in documents] == [
        str(notes),
        str(good),
        str(tmp_path / "gone.png"),
    ]
    assert documents[0]["codes"] == []
    assert "cannot identify image file" in str(documents[0]["error"])
    assert payload_of(documents[1]) == [b"1234567890"]
    assert "error" not in documents[1]
    assert documents[2] == {
        "file": str(tmp_path / "gone.png"),
        "codes": [],
        "ms": 0.0,
        "error": "No such file or directory",
    }


def test_no_code_is_not_a_failure(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    save_png(empty_frame((320, 240)), str(tmp_path / "empty.png"))
    code, [document] = decode_json(capsys, str(tmp_path / "empty.png"))
    assert code == 0
    assert document["codes"] == []
    assert "error" not in document


def test_binary_and_text_payloads(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    binary = bytes(range(0xF0, 0x100))
    save_png(render_qr(binary, (240, 240), Look(module_px=4)), str(tmp_path / "binary.png"))
    save_png(
        render_qr("Lào Cai\r\n".encode(), (240, 240), Look(module_px=4)), str(tmp_path / "text.png")
    )
    _, documents = decode_json(capsys, str(tmp_path / "binary.png"), str(tmp_path / "text.png"))
    assert documents[0]["codes"] == [{"text": None, "bytes_b64": base64.b64encode(binary).decode()}]
    assert documents[1]["codes"] == [
        {"text": "Lào Cai\r\n", "bytes_b64": base64.b64encode("Lào Cai\r\n".encode()).decode()}
    ]

    assert run(["decode", str(tmp_path / "binary.png"), str(tmp_path / "text.png")]) == 0
    encoded = base64.b64encode(binary).decode()
    assert capsys.readouterr().out.splitlines() == [
        f"{tmp_path / 'binary.png'}: [16 bytes, not UTF-8] base64:{encoded}",
        f"{tmp_path / 'text.png'}: Lào Cai\\r\\n",
    ]


def test_plain_output_says_when_nothing_was_found_and_why_a_file_failed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    save_png(empty_frame((160, 120)), str(tmp_path / "empty.png"))
    assert run(["decode", str(tmp_path / "empty.png"), str(tmp_path / "gone.png")]) == 1
    captured = capsys.readouterr()
    assert captured.out == f"{tmp_path / 'empty.png'}: no code found\n"
    assert captured.err == f"{tmp_path / 'gone.png'}: error: No such file or directory\n"


def test_uses_the_configured_decoder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[camera]\ndecoder = "pyzbar"\n')
    # pyzbar alone cannot read this version 40 code with 1-pixel modules.
    _, [document] = decode_json(capsys, "-c", str(config), str(DATA / "set5-16.png"))
    assert document["codes"] == []


def test_bad_config_exits_78(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[camera]\ndecoder = "opencv"\n')
    assert run(["decode", "-c", str(config), str(DATA / "set6-3.png")]) == 78


def test_the_installed_command_exits_with_the_result() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "scanner",
            "decode",
            "--json",
            str(DATA / "set6-3.png"),
            "/no/such.png",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
        env={**os.environ, "QRGATE_CONFIG": str(ROOT / "config.toml")},
    )
    assert done.returncode == 1
    assert [json.loads(line)["file"] for line in done.stdout.splitlines()] == [
        str(DATA / "set6-3.png"),
        "/no/such.png",
    ]
    assert "Traceback" not in done.stderr
