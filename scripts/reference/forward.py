"""Independent float32 numpy forward pass for GGUF llama, qwen2 and gemma3
models: the oracle the C engine's logits are compared against (tests/reference/).

It owns: reading hyperparameters from GGUF metadata, dequantizing weights with
the `gguf` package (never with our C code, so the two sides share nothing but
the file), the transformer itself (RMSNorm, RoPE in GGML's "NORM" adjacent-pair
mode for llama and "NEOX" half-split mode for qwen2 and gemma3, optional
Llama-3 rope_freqs factors, grouped-query attention with a KV cache, SwiGLU,
qwen2's QKV biases, tied embeddings), greedy decoding, and an optional
emulation of the engine's 8-bit activation quantization inside quantized
matmuls.

Gemma 3 (text), as written from transformers' Gemma3 modeling code and the
GGUF layout llama.cpp's converter defines: embeddings times sqrt(n_embd);
RMSNorm whose GGUF weights already hold Gemma's "1 + w" (the converter adds
the 1 to every *norm.weight, q/k norms included); per-head RMSNorm of q and k
before RoPE; RMSNorm of each branch's output before the residual add
(post_attention_norm, post_ffw_norm); GELU(tanh)-gated feed-forward; five of
every six layers local -- a sliding window (a query at p sees keys p - w < j
<= p, w = attention.sliding_window) and rope base rope.freq_base_swa (10000
when absent), never rope-scaled -- and every sixth global (rope.freq_base,
linear rope.scaling if the file has it); scores scaled by
query_pre_attn_scalar^-0.5, which GGUF does not carry: it is head_dim in every
released size but 27B (62 layers), where it is n_embd / n_head; an optional
final_logit_softcapping; tied output.

Two modes (see docs/testing.md, "Logits against the numpy reference"):
  * float    : activations stay f32. The distance from this mode to the engine
               is the engine's true numerical error (what users get).
  * emulated : every matmul input is quantized and dequantized per block the
               way the engine's integer dot products see it (Q8_0 / Q8_1 /
               Q8_K, chosen by the weight's type; Q8_1's block sum rounded
               to f16 as stored), and K/V are rounded to f16 as the engine's
               KV pool stores them. Then the only remaining
               differences are summation order and f32 rounding, so this mode
               must agree much more tightly, and long greedy runs (which
               amplify any near-tie at one step into a different text) are
               compared against it.

Usage as a library:
    m = Model("model.gguf")
    logits = m.logits([1, 403, 407], mode=EMULATED)   # [n_tokens, n_vocab]
    ids = m.greedy([1, 403, 407], 40, mode=FLOAT)
Nothing here is tuned for speed beyond using BLAS for matmuls; weights are
dequantized lazily, layer by layer, and kept (f32) for repeated calls.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import gguf
from gguf import GGMLQuantizationType as QT


# --------------------------------------------------------------------------
# Modes
# --------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Mode:
    act_quant: bool = False   # quantize-dequantize matmul inputs like the engine
    f16_act: bool = False     # round inputs of F16-weight matmuls to f16 (GGML does)
    kv_f16: bool = False      # store K and V rounded to f16 (an f16 KV cache)
    q8_1_sum_f16: bool = False  # Q8_1's block sum s is an f16 (see matmul)
    f64_matmul: bool = False  # accumulate matmuls in f64: a differently-rounded
                              # twin, to measure the noise floor of a mode
    name: str = "float"


FLOAT = Mode(name="float")
# The engine keeps K and V in an f16 paged pool (src/model/kv.h), so the
# emulated mode rounds them too; F16/F32 weights take f32 activations there.
EMULATED = Mode(act_quant=True, kv_f16=True, q8_1_sum_f16=True, name="emulated")


# Which 8-bit activation format a weight type's integer dot product uses (the
# "vec_dot_type" of the GGML formats): legacy symmetric formats pair with
# Q8_0, the ones with a min (offset) with Q8_1 (whose extra sum term carries the
# offset), and all K-quants with the 256-element Q8_K.
_ACT_FORMAT = {
    QT.Q4_0: "q8_0", QT.Q5_0: "q8_0", QT.Q8_0: "q8_0",
    QT.Q4_1: "q8_1", QT.Q5_1: "q8_1",
    QT.Q2_K: "q8_k", QT.Q3_K: "q8_k", QT.Q4_K: "q8_k", QT.Q5_K: "q8_k", QT.Q6_K: "q8_k",
    # the table formats: IQ4_NL and MXFP4 blocks of 32 with Q8_0, IQ4_XS with
    # Q8_K; the lattice i-quants (IQ1_*, IQ2_*, IQ3_*) take f32 activations
    QT.IQ4_NL: "q8_0", QT.MXFP4: "q8_0", QT.IQ4_XS: "q8_k",
}


def _round_half_away(x: np.ndarray) -> np.ndarray:
    # C roundf(): ties go away from zero (np.round would go to even).
    return np.sign(x) * np.floor(np.abs(x) + np.float32(0.5))


def qdq_q8_0(x: np.ndarray) -> np.ndarray:
    """Quantize-dequantize rows of x in blocks of 32 as Q8_0 (and Q8_1, whose
    values are the same: its extra field s = d * sum(q) only re-expresses the
    block sum). Per the format: d = max|x| / 127, q = roundf(x / d) with ties
    away from zero, and d is stored as f16, so the value the dot product sees
    is q * f16(d)."""
    n, k = x.shape
    assert k % 32 == 0, "Q8_0 activations need rows that are a multiple of 32"
    b = x.reshape(n, k // 32, 32).astype(np.float32)
    amax = np.abs(b).max(axis=2, keepdims=True)
    d = amax / np.float32(127.0)
    with np.errstate(divide="ignore"):
        idv = np.where(d > 0, np.float32(1.0) / d, np.float32(0.0)).astype(np.float32)
    q = _round_half_away(b * idv)
    d16 = d.astype(np.float16).astype(np.float32)
    return (q * d16).reshape(n, k).astype(np.float32)


def q8_1_sum_error(x: np.ndarray) -> np.ndarray:
    """Per 32-block of x [n, k]: the rounding error of Q8_1's stored block sum,
    s16 - d16 * sum(q) with s16 = f16(d16 * sum(q)), shape [n, k / 32]. A
    Q4_1/Q5_1 dot product adds weight_min * s16 per block, so this error, times
    the weight block's min, is what the engine adds on top of q * d16 inputs.
    (Small per block, but on stories260K it moves logits by 0.25.)"""
    n, k = x.shape
    b = x.reshape(n, k // 32, 32).astype(np.float32)
    d = np.abs(b).max(axis=2) / np.float32(127.0)
    with np.errstate(divide="ignore"):
        idv = np.where(d > 0, np.float32(1.0) / d, np.float32(0.0)).astype(np.float32)
    qsum = _round_half_away(b * idv[..., None]).sum(axis=2, dtype=np.float32)
    d16 = d.astype(np.float16).astype(np.float32)
    s16 = (d16 * qsum).astype(np.float16).astype(np.float32)
    return (s16 - d16 * qsum).astype(np.float32)


def qdq_q8_k(x: np.ndarray) -> np.ndarray:
    """Quantize-dequantize rows of x in blocks of 256 as Q8_K. The format scales
    by the signed element of largest magnitude: iscale = -127 / max, q =
    nearest_int(x * iscale) (ties to even) clipped above at 127, d = 1 / iscale
    kept as f32. The sign flip only mirrors q; the value seen is q * d."""
    n, k = x.shape
    assert k % 256 == 0, "Q8_K activations need rows that are a multiple of 256"
    b = x.reshape(n, k // 256, 256).astype(np.float32)
    idx = np.abs(b).argmax(axis=2)[..., None]
    mx = np.take_along_axis(b, idx, axis=2)
    with np.errstate(divide="ignore"):
        iscale = np.where(mx != 0, np.float32(-127.0) / mx, np.float32(0.0)).astype(np.float32)
        d = np.where(mx != 0, np.float32(1.0) / iscale, np.float32(0.0)).astype(np.float32)
    q = np.minimum(np.rint(b * iscale), 127.0)
    return (q * d).reshape(n, k).astype(np.float32)


def quantize_activations(x: np.ndarray, wtype: QT, mode: Mode) -> np.ndarray:
    """What the engine's matmul sees of its f32 input x for a weight of type wtype."""
    if mode.act_quant:
        fmt = _ACT_FORMAT.get(wtype)
        if fmt == "q8_0" or fmt == "q8_1":
            return qdq_q8_0(x)
        if fmt == "q8_k":
            return qdq_q8_k(x)
    if mode.f16_act and wtype == QT.F16:
        return x.astype(np.float16).astype(np.float32)
    return x


# --------------------------------------------------------------------------
# Hyperparameters and weights
# --------------------------------------------------------------------------

def _field(reader: gguf.GGUFReader, key: str, default=None):
    f = reader.fields.get(key)
    if f is None:
        return default
    return f.contents()


@dataclasses.dataclass
class HParams:
    arch: str
    n_layer: int
    n_embd: int
    n_head: int
    n_head_kv: int
    head_dim: int
    n_rot: int
    n_ff: int
    n_vocab: int
    rope_base: float
    eps: float
    rope_neox: bool       # True: rotate (i, i + n_rot/2); False: (2i, 2i + 1)
    # Gemma 3 (all neutral for llama / qwen2)
    gemma: bool = False        # sqrt(n_embd) embeddings, q/k norms, post-branch norms, GELU
    attn_scale: float = 0.0    # score scale; 0: 1 / sqrt(head_dim)
    n_swa: int = 0             # sliding window of the local layers (0: none)
    swa_period: int = 0        # every swa_period-th layer is global, the others local
    rope_base_swa: float = 10000.0
    rope_linear: float = 1.0   # linear rope scaling factor of the global layers
    final_softcap: float = 0.0 # logits -> c * tanh(logits / c) when > 0

    def is_local(self, il: int) -> bool:
        return self.n_swa > 0 and self.swa_period > 0 and (il + 1) % self.swa_period != 0


def read_hparams(reader: gguf.GGUFReader) -> HParams:
    arch = _field(reader, "general.architecture")
    if arch not in ("llama", "qwen2", "gemma3"):
        raise ValueError(f"reference forward pass supports llama, qwen2 and gemma3, not {arch!r}")
    g = lambda k, d=None: _field(reader, f"{arch}.{k}", d)  # noqa: E731
    n_embd = int(g("embedding_length"))
    n_head = int(g("attention.head_count"))
    n_head_kv = int(g("attention.head_count_kv", n_head))
    head_dim = int(g("attention.key_length", n_embd // n_head))
    n_vocab = len(reader.fields["tokenizer.ggml.tokens"].data)
    hp = HParams(
        arch=arch,
        n_layer=int(g("block_count")),
        n_embd=n_embd,
        n_head=n_head,
        n_head_kv=n_head_kv,
        head_dim=head_dim,
        n_rot=int(g("rope.dimension_count", head_dim)),
        n_ff=int(g("feed_forward_length")),
        n_vocab=n_vocab,
        rope_base=float(g("rope.freq_base", 10000.0)),
        eps=float(g("attention.layer_norm_rms_epsilon", 1e-5)),
        # GGUF llama files hold Q/K permuted by the converter so that GGML's
        # adjacent-pair rotation reproduces HF's half rotation; qwen2 files are
        # not permuted and need the half (NEOX) rotation directly.
        rope_neox=(arch in ("qwen2", "gemma3")),
    )
    if arch == "gemma3":
        hp.gemma = True
        hp.eps = float(g("attention.layer_norm_rms_epsilon", 1e-6))
        n_layer_27b = 62
        qpas = n_embd / n_head if hp.n_layer == n_layer_27b else head_dim
        hp.attn_scale = 1.0 / math.sqrt(qpas)
        hp.n_swa = int(g("attention.sliding_window", 0))
        hp.swa_period = 6
        hp.rope_base_swa = float(g("rope.freq_base_swa", 10000.0))
        hp.final_softcap = float(g("final_logit_softcapping", 0.0) or 0.0)
        kind = g("rope.scaling.type", "none")
        if kind == "linear":
            hp.rope_linear = float(g("rope.scaling.factor", 1.0))
        elif kind != "none":
            raise ValueError(f"gemma3 reference: rope scaling {kind!r} not supported (none, linear)")
    return hp


class Weights:
    """Dequantized f32 weights by GGUF tensor name, made on first use. Matrices
    come back as [n_out, n_in] (GGUF's ne[1] rows of ne[0] elements)."""

    def __init__(self, reader: gguf.GGUFReader, keep: bool = True):
        self._tensors = {t.name: t for t in reader.tensors}
        self._cache: dict[str, np.ndarray] = {}
        self.keep = keep

    def has(self, name: str) -> bool:
        return name in self._tensors

    def type(self, name: str) -> QT:
        return self._tensors[name].tensor_type

    def get(self, name: str) -> np.ndarray:
        w = self._cache.get(name)
        if w is not None:
            return w
        t = self._tensors[name]
        ne = [int(v) for v in t.shape]  # GGUF order: ne[0] is the row length
        w = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32, copy=False)
        w = w.reshape(list(reversed(ne))) if len(ne) > 1 else w.reshape(ne)
        w = np.ascontiguousarray(w)
        if self.keep:
            self._cache[name] = w
        return w

    def block_mins(self, name: str) -> np.ndarray:
        """The f16 min m of every block of a Q4_1/Q5_1 matrix: [n_out, n_in / 32].
        Both layouts start { half d; half m; ... }."""
        key = name + "#mins"
        w = self._cache.get(key)
        if w is not None:
            return w
        t = self._tensors[name]
        bsize = {QT.Q4_1: 20, QT.Q5_1: 24}[t.tensor_type]
        raw = np.asarray(t.data).reshape(t.data.shape[0], -1, bsize)
        w = np.ascontiguousarray(raw[:, :, 2:4]).view(np.float16)[..., 0].astype(np.float32)
        if self.keep:
            self._cache[key] = w
        return w

    def row(self, name: str, i: int) -> np.ndarray:
        """One row of a matrix (an embedding lookup) without dequantizing all of it."""
        if name in self._cache:
            return self._cache[name][i]
        t = self._tensors[name]
        return gguf.quants.dequantize(t.data[i:i + 1], t.tensor_type).reshape(-1).astype(np.float32)


# --------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------

def rms_norm(x: np.ndarray, w: np.ndarray, eps: float) -> np.ndarray:
    # mean of squares in f32 over the row, as a float engine does it
    ms = np.mean(x * x, axis=-1, keepdims=True, dtype=np.float32)
    return (x / np.sqrt(ms + np.float32(eps))) * w


def silu(x: np.ndarray) -> np.ndarray:
    return x / (np.float32(1.0) + np.exp(-x))


def gelu_tanh(x: np.ndarray) -> np.ndarray:
    # transformers' "gelu_pytorch_tanh": 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
    c = np.float32(math.sqrt(2.0 / math.pi))
    return (np.float32(0.5) * x * (np.float32(1.0) + np.tanh(c * (x + np.float32(0.044715) * x * x * x)))).astype(np.float32)


class KVCache:
    """Keys and values of every past position, per layer: [n_head_kv, n_pos, head_dim]."""

    def __init__(self, hp: HParams):
        self.k = [np.zeros((hp.n_head_kv, 0, hp.head_dim), np.float32) for _ in range(hp.n_layer)]
        self.v = [np.zeros((hp.n_head_kv, 0, hp.head_dim), np.float32) for _ in range(hp.n_layer)]
        self.n_pos = 0

    def truncate(self, n_pos: int) -> None:
        """Forgets every position from n_pos on (rejected draft tokens)."""
        self.k = [k[:, :n_pos] for k in self.k]
        self.v = [v[:, :n_pos] for v in self.v]
        self.n_pos = n_pos


class Model:
    def __init__(self, path, keep_weights: bool = True):
        self.path = str(path)
        self.reader = gguf.GGUFReader(self.path)
        self.hp = read_hparams(self.reader)
        self.w = Weights(self.reader, keep=keep_weights)
        hp = self.hp
        # Inverse frequencies theta_i = base^(-2i/n_rot), computed in float64 and
        # rounded once; Llama-3 style files divide them by rope_freqs factors.
        expo = -np.arange(0, hp.n_rot, 2, dtype=np.float64) / hp.n_rot
        inv = hp.rope_base ** expo / hp.rope_linear
        if self.w.has("rope_freqs.weight"):
            inv = inv / self.w.get("rope_freqs.weight").astype(np.float64)
        self.inv_freq = inv
        # gemma3's local layers: their own base, no scaling
        self.inv_freq_swa = hp.rope_base_swa ** expo
        self.out_name = "output.weight" if self.w.has("output.weight") else "token_embd.weight"

    # -- pieces -------------------------------------------------------------

    def matmul(self, x: np.ndarray, name: str, mode: Mode) -> np.ndarray:
        """x [n, n_in] times weight [n_out, n_in]^T, with the engine's view of x."""
        wtype = self.w.type(name)
        xin = quantize_activations(x, wtype, mode)
        if mode.f64_matmul:
            y = xin.astype(np.float64) @ self.w.get(name).T.astype(np.float64)
        else:
            y = xin @ self.w.get(name).T
        if mode.act_quant and mode.q8_1_sum_f16 and _ACT_FORMAT.get(wtype) == "q8_1":
            # sum_b m_b * s16_b where the dequantized inputs gave sum_b m_b * d16 * sum(q)
            y = y + q8_1_sum_error(x) @ self.w.block_mins(name).T
        bias = name.replace(".weight", ".bias")
        if self.w.has(bias):
            y = y + self.w.get(bias)
        return y.astype(np.float32)

    def rope(self, x: np.ndarray, pos: np.ndarray, local: bool = False) -> np.ndarray:
        """Rotates x [n_head, n, head_dim] for positions pos [n]; the first n_rot
        dimensions rotate, the rest pass through. local: a sliding-window
        layer's frequencies (gemma3)."""
        hp = self.hp
        inv = self.inv_freq_swa if local else self.inv_freq
        ang = pos.astype(np.float64)[:, None] * inv[None, :]  # [n, n_rot/2]
        cos = np.cos(ang).astype(np.float32)
        sin = np.sin(ang).astype(np.float32)
        out = x.copy()
        r = x[..., :hp.n_rot]
        if hp.rope_neox:
            half = hp.n_rot // 2
            a, b = r[..., :half], r[..., half:]
            out[..., :half] = a * cos - b * sin
            out[..., half:hp.n_rot] = a * sin + b * cos
        else:
            a, b = r[..., 0::2], r[..., 1::2]
            out[..., 0:hp.n_rot:2] = a * cos - b * sin
            out[..., 1:hp.n_rot:2] = a * sin + b * cos
        return out

    def embed(self, tokens) -> np.ndarray:
        hp = self.hp
        for t in tokens:
            if not 0 <= t < hp.n_vocab:
                raise ValueError(f"token id {t} out of range [0, {hp.n_vocab})")
        x = np.stack([self.w.row("token_embd.weight", int(t)) for t in tokens]).astype(np.float32)
        if hp.gemma:
            x = x * np.float32(math.sqrt(hp.n_embd))
        return x

    # -- the forward pass ---------------------------------------------------

    def forward(self, tokens, cache: KVCache, mode: Mode = FLOAT) -> np.ndarray:
        """Runs tokens after what cache already holds; returns their logits
        [len(tokens), n_vocab] and appends their keys and values to cache."""
        hp = self.hp
        n = len(tokens)
        pos = np.arange(cache.n_pos, cache.n_pos + n)
        x = self.embed(tokens)                                     # [n, n_embd]
        group = hp.n_head // hp.n_head_kv
        scale = np.float32(hp.attn_scale or 1.0 / math.sqrt(hp.head_dim))
        n_past = cache.n_pos
        # causal mask over [n queries, n_past + n keys]; local layers also
        # drop keys n_swa or more positions back
        kpos = np.arange(n_past + n)[None, :]
        mask = np.where(kpos <= pos[:, None], 0.0, -np.inf).astype(np.float32)
        mask_swa = np.where((kpos <= pos[:, None]) & (kpos > pos[:, None] - hp.n_swa),
                            0.0, -np.inf).astype(np.float32) if hp.n_swa else mask
        for il in range(hp.n_layer):
            p = f"blk.{il}."
            local = hp.is_local(il)
            # attention block: pre-norm, projections, RoPE on q and k
            h = rms_norm(x, self.w.get(p + "attn_norm.weight"), hp.eps)
            q = self.matmul(h, p + "attn_q.weight", mode)          # [n, n_head*hd]
            k = self.matmul(h, p + "attn_k.weight", mode)          # [n, n_head_kv*hd]
            v = self.matmul(h, p + "attn_v.weight", mode)
            q = q.reshape(n, hp.n_head, hp.head_dim).transpose(1, 0, 2)
            k = k.reshape(n, hp.n_head_kv, hp.head_dim).transpose(1, 0, 2)
            v = v.reshape(n, hp.n_head_kv, hp.head_dim).transpose(1, 0, 2)
            if hp.gemma:
                q = rms_norm(q, self.w.get(p + "attn_q_norm.weight"), hp.eps)
                k = rms_norm(k, self.w.get(p + "attn_k_norm.weight"), hp.eps)
            q = self.rope(q, pos, local)
            k = self.rope(k, pos, local)
            if mode.kv_f16:
                k = k.astype(np.float16).astype(np.float32)
                v = v.astype(np.float16).astype(np.float32)
            cache.k[il] = np.concatenate([cache.k[il], k], axis=1)
            cache.v[il] = np.concatenate([cache.v[il], v], axis=1)
            K, V = cache.k[il], cache.v[il]                        # [n_head_kv, n_past+n, hd]
            # GQA: query head j reads kv head j // group
            Kh = np.repeat(K, group, axis=0)
            Vh = np.repeat(V, group, axis=0)
            s = (q @ Kh.transpose(0, 2, 1)) * scale + (mask_swa if local else mask)[None]  # [n_head, n, n_past+n]
            s = s - s.max(axis=-1, keepdims=True)
            e = np.exp(s)
            a = (e / e.sum(axis=-1, keepdims=True)) @ Vh           # [n_head, n, hd]
            a = a.transpose(1, 0, 2).reshape(n, hp.n_head * hp.head_dim)
            o = self.matmul(a, p + "attn_output.weight", mode)
            if hp.gemma:
                o = rms_norm(o, self.w.get(p + "post_attention_norm.weight"), hp.eps)
            x = x + o
            # feed-forward block: pre-norm, SwiGLU (gemma: GELU-gated, post-norm)
            h = rms_norm(x, self.w.get(p + "ffn_norm.weight"), hp.eps)
            g = self.matmul(h, p + "ffn_gate.weight", mode)
            u = self.matmul(h, p + "ffn_up.weight", mode)
            act = gelu_tanh(g) if hp.gemma else silu(g)
            f = self.matmul(act * u, p + "ffn_down.weight", mode)
            if hp.gemma:
                f = rms_norm(f, self.w.get(p + "post_ffw_norm.weight"), hp.eps)
            x = x + f
        cache.n_pos += n
        x = rms_norm(x, self.w.get("output_norm.weight"), hp.eps)
        y = self.matmul(x, self.out_name, mode)
        if hp.final_softcap > 0:
            c = np.float32(hp.final_softcap)
            y = (c * np.tanh(y / c)).astype(np.float32)
        return y

    def logits(self, tokens, mode: Mode = FLOAT) -> np.ndarray:
        """Logits after every token of one fresh sequence: [len(tokens), n_vocab]."""
        return self.forward(list(tokens), KVCache(self.hp), mode)

    def greedy(self, tokens, n_new: int, mode: Mode = FLOAT, stop=(), gaps=None):
        """Prefills tokens, then appends n_new argmax tokens one at a time
        (incremental decoding through the KV cache, as a server does). Stops
        early after emitting a token in stop. Returns the new ids; if gaps is
        a list, appends each step's top-1 minus top-2 logit (how close a tie)."""
        cache = KVCache(self.hp)
        logits = self.forward(list(tokens), cache, mode)[-1]
        out = []
        for _ in range(n_new):
            t = int(np.argmax(logits))
            out.append(t)
            if gaps is not None:
                two = np.partition(logits, -2)[-2:]
                gaps.append(float(abs(two[1] - two[0])))
            if t in stop:
                break
            logits = self.forward([t], cache, mode)[-1]
        return out


def greedy_with_draft(model: "Model", tokens, n_new: int, mode: Mode, draft, stop=()):
    """The same ids as model.greedy(tokens, n_new, mode), found faster when a
    draft (a guess of the continuation, e.g. the other mode's greedy ids) is
    mostly right: the draft is checked in one batched forward pass (causal, so
    logits after draft token i depend only on tokens before it, exactly as in
    one-at-a-time decoding) and accepted up to its first disagreement with the
    argmax; decoding resumes from there. Only a speed-up: a bad draft costs
    time, never correctness (up to f32 summation-order noise between batched
    and single-row matmuls, far below any logit gap that decides a token)."""
    cache = KVCache(model.hp)
    last = model.forward(list(tokens), cache, mode)[-1]
    out: list[int] = []
    draft = list(draft)
    while len(out) < n_new:
        t = int(np.argmax(last))
        out.append(t)
        if t in stop or len(out) == n_new:
            break
        guess = draft[len(out):n_new] if draft[:len(out)] == out else []
        if not guess:
            last = model.forward([t], cache, mode)[-1]
            continue
        base = cache.n_pos
        lg = model.forward([t] + guess, cache, mode)        # logits after t, guess[0], ...
        nacc = 0
        while nacc < len(guess) and int(np.argmax(lg[nacc])) == guess[nacc]:
            nacc += 1
            if guess[nacc - 1] in stop:
                break
        nacc = min(nacc, n_new - len(out))
        out.extend(guess[:nacc])
        if (out and out[-1] in stop) or len(out) >= n_new:
            break
        cache.truncate(base + 1 + nacc)                     # keep t and accepted guesses
        last = lg[nacc]
    return out[:n_new]


def logsumexp(x: np.ndarray) -> np.ndarray:
    m = x.max(axis=-1, keepdims=True).astype(np.float64)
    return (m[..., 0] + np.log(np.exp(x.astype(np.float64) - m).sum(axis=-1)))


if __name__ == "__main__":
    import argparse
    ap = argparse.ArgumentParser(description="numpy reference logits / greedy ids for a GGUF model")
    ap.add_argument("model")
    ap.add_argument("--tokens", required=True, help="comma-separated token ids")
    ap.add_argument("--mode", choices=["float", "emulated"], default="float")
    ap.add_argument("--greedy", type=int, default=0)
    a = ap.parse_args()
    m = Model(a.model)
    toks = [int(t) for t in a.tokens.split(",")]
    md = FLOAT if a.mode == "float" else EMULATED
    if a.greedy:
        print(m.greedy(toks, a.greedy, md))
    else:
        lg = m.logits(toks, md)
        print("argmax per position:", lg.argmax(axis=-1).tolist())
