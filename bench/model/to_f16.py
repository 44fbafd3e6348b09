#!/usr/bin/env python3
"""Rewrites a quantized GGUF as F16 (vectors and norms F32), dequantizing with
gguf-py, so `hyperlama create --quantize TYPE` can requantize the same model to
several types for a like-for-like benchmark (docs/performance.md, "Weight
types"). The F16 file carries the quantization error of its source, which is
fine for speed comparisons, not for quality ones.

Usage: to_f16.py SRC.gguf DST.gguf
"""
import sys

import gguf
import numpy as np
from gguf import GGMLQuantizationType as QT
from gguf import quants


def main(src, dst):
    r = gguf.GGUFReader(src)
    arch = r.fields["general.architecture"].contents()
    w = gguf.GGUFWriter(dst, arch=arch)
    for f in r.fields.values():
        if f.name.startswith("GGUF.") or f.name == "general.architecture":
            continue
        if f.name == "general.file_type":
            w.add_file_type(1)
            continue
        vt = f.types[0]
        w.add_key_value(f.name, f.contents(), vt, sub_type=f.types[1] if vt == gguf.GGUFValueType.ARRAY else None)
    for t in r.tensors:
        a = np.asarray(quants.dequantize(t.data, t.tensor_type), dtype=np.float32)
        keep_f32 = a.ndim < 2 or t.tensor_type == QT.F32
        w.add_tensor(t.name, a if keep_f32 else a.astype(np.float16))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file(progress=False)
    w.close()


if __name__ == "__main__":
    main(*sys.argv[1:3])
