"""Search text folded so that "nguyen van an" finds "Nguyễn Văn An".

Unicode decomposition splits a Vietnamese letter into its base letter and its marks
(tone and shape); the marks are dropped. Đ/đ is a letter of its own, not a D with a
mark, so it is mapped by hand.
"""

from __future__ import annotations

import unicodedata

LETTERS = str.maketrans({"đ": "d", "Đ": "d"})


def fold(text: str) -> str:
    """Lower case, without diacritics, with runs of white space made one space."""
    decomposed = unicodedata.normalize("NFD", text.translate(LETTERS))
    bare = "".join(char for char in decomposed if not unicodedata.combining(char))
    return " ".join(bare.casefold().split())
