"""Image files as the decoders want them: which files in a folder are images, and reading
one as an 8-bit grayscale array (used by the replay camera and `qrgate decode`).

Pillow loads with the first image read, not with this module: a gate whose camera hands
over arrays never needs it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from scanner.errors import QrgateError

if TYPE_CHECKING:
    from PIL.Image import Image as PillowImage

Gray = NDArray[np.uint8]

IMAGE_SUFFIXES = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".pgm", ".pbm", ".ppm", ".tif", ".tiff", ".webp"}
)


class ImageError(QrgateError):
    """An image file cannot be read."""


def image_files(folder: Path) -> list[Path]:
    """The image files directly in `folder`, in name order (other files are left out)."""
    return sorted(
        (
            path
            for path in folder.iterdir()
            if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file()
        ),
        key=lambda path: path.name,
    )


def load_gray(path: Path) -> Gray:
    """The image at `path` as 8-bit grayscale; ImageError saying why it cannot be read."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.load()
            return to_gray(image)
    except OSError as error:  # includes a missing file and PIL's UnidentifiedImageError
        raise ImageError(f"{path}: {error.strerror or error}") from None
    except (Image.DecompressionBombError, ValueError) as error:
        raise ImageError(f"{path}: {error}") from None


def to_gray(image: PillowImage) -> Gray:
    """Luma of any Pillow image; transparency counts as white paper, 16-bit is scaled."""
    from PIL import Image

    if image.mode.startswith("I;16"):
        return (np.asarray(image, dtype=np.uint16) >> 8).astype(np.uint8)
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        paper = Image.new("RGBA", image.size, "white")
        image = Image.alpha_composite(paper, image.convert("RGBA"))
    return np.asarray(image.convert("L"))
