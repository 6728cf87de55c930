"""safetensors_io.py — a tiny, self-contained safetensors reader/writer for the golden-data scripts.

Written from the format description in the huggingface/safetensors README ("Format"), not from the
`safetensors` package, so the golden files do not depend on the code they are meant to check:

    bytes [0, 8)    N, unsigned 64-bit little-endian: byte length of the JSON header
    bytes [8, 8+N)  UTF-8 JSON {name: {"dtype", "shape", "data_offsets": [begin, end)}, "__metadata__": {...}}
                    right-padded with spaces so that 8 + N is a multiple of 8
    bytes [8+N, ..) the byte buffer; offsets are relative to its start, little-endian, row-major

Supported dtypes: F64, F32, BF16, F16, I64, I32, I8, and raw F8_E4M3 / F8_E8M0 codes (read and write), which is all the golden data needs.
BF16 is written by round-to-nearest-even from float32:
    bf16_bits = (f32_bits + 0x7FFF + ((f32_bits >> 16) & 1)) >> 16
and read back exactly (bf16_bits << 16 is a float32).

Tensors are numpy arrays. `write_safetensors` takes {name: (dtype_string, array)} so that the storage
dtype is always explicit; `read_safetensors` returns {name: (dtype_string, array)} where BF16 arrays are
returned as float32 (the exact value of the stored bf16).
"""
import json
import struct

import numpy as np

# dtype string -> (numpy dtype used for the raw bytes, bytes per element)
_RAW = {
    "F64": (np.dtype("<f8"), 8),
    "F32": (np.dtype("<f4"), 4),
    "BF16": (np.dtype("<u2"), 2),
    "F16": (np.dtype("<f2"), 2),
    "I64": (np.dtype("<i8"), 8),
    "I32": (np.dtype("<i4"), 4),
    "F8_E4M3": (np.dtype("u1"), 1),  # raw codes; decoding is the caller's (deepseek_ref.py)
    "F8_E8M0": (np.dtype("u1"), 1),  # raw UE8M0 codes: 2^(code - 127)
    "I8": (np.dtype("i1"), 1),       # e.g. DeepSeek-V4's packed FP4 experts
}


def f32_to_bf16_bits(x):
    """float32 array -> uint16 array of bf16 bit patterns, round to nearest, ties to even."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    if not np.all(np.isfinite(x)):
        raise ValueError("f32_to_bf16_bits: non-finite value (not needed by the golden data)")
    bits = x.view(np.uint32).astype(np.uint64)  # 64-bit so the rounding add cannot wrap
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
    return rounded.astype(np.uint16)


def bf16_bits_to_f32(b):
    """uint16 array of bf16 bit patterns -> float32 array (exact)."""
    b = np.ascontiguousarray(b, dtype=np.uint16)
    return (b.astype(np.uint32) << 16).view(np.float32)


def _encode(dtype, array):
    """(dtype string, numpy array) -> little-endian bytes of the stored representation."""
    if dtype not in _RAW:
        raise ValueError(f"unsupported dtype {dtype!r}")
    if dtype == "BF16":
        raw = f32_to_bf16_bits(np.asarray(array, dtype=np.float32))
    else:
        raw = np.ascontiguousarray(np.asarray(array), dtype=_RAW[dtype][0])
    return raw.tobytes(order="C")


def write_safetensors(path, tensors, metadata=None):
    """Write {name: (dtype, array)} to `path`. Tensors are laid out contiguously in name order."""
    header = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    blobs = []
    offset = 0
    for name in sorted(tensors):
        dtype, array = tensors[name]
        array = np.asarray(array)
        blob = _encode(dtype, array)
        header[name] = {
            "dtype": dtype,
            "shape": [int(s) for s in array.shape],
            "data_offsets": [offset, offset + len(blob)],
        }
        blobs.append(blob)
        offset += len(blob)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * ((-len(text)) % 8)  # 8 + N is then a multiple of 8
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for blob in blobs:
            f.write(blob)


def read_safetensors(path):
    """Read `path` -> ({name: (dtype, array)}, metadata dict). BF16 comes back as exact float32."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 8:
        raise ValueError(f"{path}: truncated (no 8-byte header length)")
    (n,) = struct.unpack("<Q", data[:8])
    if 8 + n > len(data):
        raise ValueError(f"{path}: header length {n} runs past end of file ({len(data)} bytes)")
    header = json.loads(data[8:8 + n].decode("utf-8"))
    buffer = memoryview(data)[8 + n:]
    metadata = header.pop("__metadata__", {}) or {}
    out = {}
    for name, info in header.items():
        dtype = info["dtype"]
        if dtype not in _RAW:
            raise ValueError(f"{path}: tensor {name}: unsupported dtype {dtype!r}")
        raw_dtype, size = _RAW[dtype]
        shape = tuple(int(s) for s in info["shape"])
        begin, end = (int(o) for o in info["data_offsets"])
        numel = int(np.prod(shape, dtype=np.int64)) if shape else 1
        if not (0 <= begin <= end <= len(buffer)) or end - begin != numel * size:
            raise ValueError(f"{path}: tensor {name}: bad data_offsets {begin, end} for shape {shape} {dtype}")
        raw = np.frombuffer(buffer[begin:end], dtype=raw_dtype).reshape(shape)
        array = bf16_bits_to_f32(raw).reshape(shape) if dtype == "BF16" else raw.copy()
        out[name] = (dtype, array)
    return out, metadata
