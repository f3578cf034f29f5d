"""A gate's configuration for end-to-end runs of `qrgate run`: a replayed camera showing
badges over and over, mock pins, the store and the broker given."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PIL import Image

from scanner.config import Config, parse_config
from scanner.demo.scenario import background, card_frame


def badge_frames(folder: Path, badges: list[bytes], gap: int = 10, held: int = 3) -> Path:
    """Frames showing each badge for `held` frames, with `gap` empty frames between."""
    folder.mkdir(parents=True, exist_ok=True)
    scene = background((320, 240))
    frames = []
    for badge in badges:
        frames += [card_frame(scene, badge, tilt=0.0)] * held + [scene] * gap
    for number, frame in enumerate(frames, start=1):
        Image.fromarray(frame).save(folder / f"{number:04d}.png", compress_level=1)
    return folder


def scene_config(
    frames: Path, store: Path, broker_port: int, *, fps: float = 20.0, **sections: Any
) -> Config:
    """Badges accepted, the camera replaying `frames` for ever, commands off unless
    `sections` say otherwise."""
    data: dict[str, Any] = {
        "camera": {"source": f"replay:{frames}", "fps": fps, "replay_loop": True},
        "gpio": {"pin_factory": "mock"},
        "policy": {"accept": ["badge"], "repeat_window_s": 0.5},
        "store": {"path": str(store)},
        "mqtt": {
            "host": "127.0.0.1",
            "port": broker_port,
            "retry_min_s": 0.2,
            "retry_max_s": 0.5,
            "heartbeat_s": 1.0,
        },
        "commands": {"enabled": False},
    }
    for section, values in sections.items():
        data[section] = {**data.get(section, {}), **values}
    return parse_config(data)
