"""The hash of a key's text that datastore 0.3.6 used, the same in every process.

Owns :func:`stable_hash`.  :meth:`claystore.datastore.Key.__hash__` and the default sharding
function of :class:`~claystore.datastore.ShardedDatastore`
(:func:`~claystore.datastore.collections.stable_key_hash`) call it.  No I/O.

datastore 0.3.6 hashed a key as ``smhasher.murmur3_x86_64(str(key))``: the first 8 bytes of
MurmurHash3_x86_128 (seed 0), as the C code leaves them in memory on x86 (two little-endian
32-bit words), read as one big-endian unsigned number; Python 2.7 (64-bit) then turned that
number into a C ``long`` (signed 64 bits, ``-1`` becoming ``-2``).  :func:`stable_hash` gives
that value, so ``hash(key) % n`` picks the shard 0.3.6 picked, and Python 3 returns it from
``hash()`` unchanged (it fits a ``Py_ssize_t``).  Text is encoded as UTF-8, the bytes a
Python 2 ``str`` key held.
"""

from __future__ import annotations

import struct
from typing import Final

__all__ = ["stable_hash"]

_MASK: Final = 0xFFFFFFFF
_C1: Final = 0x239B961B
_C2: Final = 0xAB0E9789
_C3: Final = 0x38B34AE5
_C4: Final = 0xA1E38B93
_WORDS: Final = struct.Struct("<4I")  # one 16-byte block: four little-endian 32-bit words


def _rotl(value: int, shift: int) -> int:
    return ((value << shift) | (value >> (32 - shift))) & _MASK


def _mix_lane(k: int, first: int, shift: int, second: int) -> int:
    """One 32-bit input word scrambled: multiply, rotate, multiply (the body and tail step)."""
    return (_rotl((k * first) & _MASK, shift) * second) & _MASK


def _fmix(h: int) -> int:
    """MurmurHash3's finalisation: every input bit reaches every output bit."""
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & _MASK
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & _MASK
    return h ^ (h >> 16)


def murmur3_x86_128(data: bytes) -> tuple[int, int, int, int]:
    """MurmurHash3_x86_128 of ``data`` with seed 0, as its four 32-bit words ``h1..h4``."""
    h1 = h2 = h3 = h4 = 0
    length = len(data)
    body = length - length % 16
    for start in range(0, body, 16):
        k1, k2, k3, k4 = _WORDS.unpack_from(data, start)
        h1 ^= _mix_lane(k1, _C1, 15, _C2)
        h1 = (((_rotl(h1, 19) + h2) & _MASK) * 5 + 0x561CCD1B) & _MASK
        h2 ^= _mix_lane(k2, _C2, 16, _C3)
        h2 = (((_rotl(h2, 17) + h3) & _MASK) * 5 + 0x0BCAA747) & _MASK
        h3 ^= _mix_lane(k3, _C3, 17, _C4)
        h3 = (((_rotl(h3, 15) + h4) & _MASK) * 5 + 0x96CD1C35) & _MASK
        h4 ^= _mix_lane(k4, _C4, 18, _C1)
        h4 = (((_rotl(h4, 13) + h1) & _MASK) * 5 + 0x32AC3B17) & _MASK
    rest = length - body
    # the tail's words, zero-padded; a word is mixed only if the tail reaches into it
    k1, k2, k3, k4 = _WORDS.unpack((data[body:] + bytes(16))[:16])
    if rest > 12:
        h4 ^= _mix_lane(k4, _C4, 18, _C1)
    if rest > 8:
        h3 ^= _mix_lane(k3, _C3, 17, _C4)
    if rest > 4:
        h2 ^= _mix_lane(k2, _C2, 16, _C3)
    if rest > 0:
        h1 ^= _mix_lane(k1, _C1, 15, _C2)
    h1 ^= length & _MASK
    h2 ^= length & _MASK
    h3 ^= length & _MASK
    h4 ^= length & _MASK
    h1 = (h1 + h2 + h3 + h4) & _MASK
    h2, h3, h4 = (h2 + h1) & _MASK, (h3 + h1) & _MASK, (h4 + h1) & _MASK
    h1, h2, h3, h4 = _fmix(h1), _fmix(h2), _fmix(h3), _fmix(h4)
    h1 = (h1 + h2 + h3 + h4) & _MASK
    return h1, (h2 + h1) & _MASK, (h3 + h1) & _MASK, (h4 + h1) & _MASK


def stable_hash(text: str) -> int:
    """The hash datastore 0.3.6 (on 64-bit Python 2.7) gave a key whose text is ``text``.

    ``smhasher.murmur3_x86_64(text)`` as a signed 64-bit C ``long`` (``-1`` becomes ``-2``);
    the same in every process and on every machine.
    """
    h1, h2, _h3, _h4 = murmur3_x86_128(text.encode("utf-8", "surrogatepass"))
    value = int.from_bytes(h1.to_bytes(4, "little") + h2.to_bytes(4, "little"), "big")
    if value >= 2**63:
        value -= 2**64
    return -2 if value == -1 else value
