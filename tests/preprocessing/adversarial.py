"""Adversarial Unicode lines for tokenizer parity tests.

Hand-picked traps (every case below is something a tokenizer has got wrong
somewhere) plus seeded random code points and random bytes over the whole range.
"""

from __future__ import annotations

import random
from typing import List

HAND_PICKED = [
    # Accents, Turkish dotted/dotless i, sharp s, ligatures, case pairs.
    "Crème brûlée, naïve café, résumé — Ångström", "İstanbul IĞDIR ıi İi", "Straße STRASSE ß ẞ",
    "ﬁnance ﬂow ﬀ ﬃ Ǆ ǅ ǆ Ĳ", "Å Å Å ω Ω Ω K K",
    # Greek final sigma in every context Python's lower() distinguishes.
    "ΟΔΥΣΣΕΥΣ ὈΔΥΣΣΕΎΣ ΣΑΣ Σ ΣΣ ΑΣ. ΑΣ'Α ΑΣ\u0301 ΑΣ.Β aΣ Σa ΑΣ-ΑΣ",
    "ΑΣ\u200dΒ Α\u00adΣ ΑΣ\u2028Β ΑΣ中 中Σ",
    # Fullwidth forms and CJK punctuation.
    "ＡＢＣ ａｂｃ １２３ ，。！？：；「」『』（）【】", "我爱北京天安门，你呢？", "豈 更 車 丽 丸",
    # Zero-width, control and special characters.
    "a\u200bb\u200cc\u200dd\u2060e\ufeff f", "x\x00y\x01z\x7f\x85w \x1c\x1d\x1e\x1f v",
    "tab\there new\nline cr\rhere nbsp\u00a0here ideographic\u3000space",
    "line\u2028sep para\u2029sep", "replacement \ufffd char", "soft\u00adhyphen",
    # Private use and unassigned code points.
    "\ue000\ue001 \U000f0000 \U0010fffd \U000e0001\U000e0041", "\u0378\u0379 \U0001fffe \U000e0080",
    # Emoji, ZWJ sequences, skin tones, flags, keycaps.
    "👩\u200d👩\u200d👧\u200d👦 👍🏽 🇫🇷 1\ufe0f\u20e3 ❤️ 🏳️\u200d🌈",
    # Arabic, Hebrew, Devanagari with combining marks, Thai.
    "مَرْحَبًا بِالْعَالَمِ ١٢٣", "שָׁלוֹם עוֹלָם", "हिन्दी क्षत्रिय संस्कृतम् ज़", "สวัสดีครับ",
    # Kana, Hangul syllables and jamo.
    "カタカナ ひらがな ｶﾀｶﾅ ヷ", "한국어 안녕하세요 각", "㈜ ㍿ ㋿",
    # Marks with non-zero combining class that survive accent stripping.
    "\U0001d165\U0001d16d\u0301\U0001d166 \u1b44\u0334\u1b44 \ua953\u0316\ua9c0 \u302e\u302f\u0300",
    "a\u0301\u0316\u0328 e\u0327\u0301 o\u031b\u0323",
    # Words of 100-250 characters, ASCII and accented, around BERT's 200 limit.
    "a" * 100, "b" * 199, "c" * 200, "d" * 201, "é" * 150, "é" * 200, "é" * 201, "x" * 250,
    "naïve" * 40, "ü" * 67,
    # Control tokens in user data are plain text.
    "[SEP] [CLS] [UNK] [PAD] [MASK] ##s ## # [unused1]", "a[SEP]b [cls]",
    # Punctuation edge cases.
    "^$`~ «» ‹› ‐‑‒–—― … ‰ § ¶ † ‡ • ′ ″ ⁂ ¿¡", "e.g. U.S.A. don't rock'n'roll 3.14 1,000",
    "", " ", "\t\n", "\u200b",
]


def random_lines(n: int, seed: int = 0) -> List[bytes]:
  """n random lines: half random code points (UTF-8), half random bytes."""
  rng = random.Random(seed)
  lines = []
  for i in range(n):
    length = rng.randrange(1, 40)
    if i % 2:
      lines.append(bytes(rng.randrange(256) for _ in range(length)))
    else:
      chars = []
      for _ in range(length):
        r = rng.random()
        if r < 0.15:
          chars.append(" ")
        elif r < 0.5:
          chars.append(chr(rng.randrange(0x20, 0x3000)))
        else:
          cp = rng.randrange(0x110000)
          chars.append(chr(cp) if not 0xD800 <= cp <= 0xDFFF else "?")
      lines.append("".join(chars).encode("utf-8"))
  return lines


def adversarial_lines(n_random: int = 4000, seed: int = 0) -> List[bytes]:
  """Hand-picked traps (also upper-cased and concatenated) plus random lines."""
  hand = HAND_PICKED + [s.upper() for s in HAND_PICKED] + [" ".join(HAND_PICKED)]
  return [s.encode("utf-8") for s in hand] + random_lines(n_random, seed)
