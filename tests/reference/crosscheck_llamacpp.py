"""Cross-checks our `FROM ./dir` converter against llama.cpp's
convert_hf_to_gguf.py (from the llama-cpp-python source package, see
bench/build_peer.sh) on the fixtures in tests/data/hf/: same tensor names,
shapes and types, equal values, and equal values for the metadata keys that
matter. Not part of the suite (it needs torch and the sdist); run it by hand:

    tar -xzf ~/.cache/hyperlama/peer/llama_cpp_python-0.3.36.tar.gz -C /tmp/lcpp --strip-components=1
    /work/refvenv/bin/python tests/reference/crosscheck_llamacpp.py /tmp/lcpp/vendor/llama.cpp [HYPERLAMA [FIXTURE ...]]

gptoss_mxfp4 (the hub's MXFP4 layout, tests/reference/make_gptoss_mxfp4_fixture.py;
last run with llama-cpp-python 0.3.36): all 41 tensors equal in name, shape, type
(the six expert matrices MXFP4 on both sides) and bytes, general.file_type 38 on
both, the keys equal but for rope.dimension_count (ours written, theirs absent).

Last run (llama-cpp-python 0.3.36): llama, qwen2, qwen3 identical (no differences;
rope_freqs.weight, which both compute for Llama 3 rope scaling, within 1 ulp).
phi3, granite, olmo2, qwen2moe, qwen3moe, mixtral, gptoss: every tensor equal
in name, shape, type and value (phi3's fused attn_qkv / ffn_up and LongRoPE
factors, the stacked experts, gpt-oss's rearranged experts, sinks and biases,
the routers kept F32 by both), the keys equal, except what is written where
llama.cpp leaves a default: attention.key_length and rope.dimension_count
(ours always; equal to the defaults), tokenizer.ggml.add_bos_token false
(theirs absent; add_eos_token too, compared since the encoders were added), and qwen2moe's ffn_gate_inp_shexp, a vector [n_embd] here,
[n_embd, 1] there (the loader reads either). Not run: gemma2 (its converter
wants a SentencePiece tokenizer.model, as for gemma3) and olmoe (its
AutoTokenizer vocabulary check fails on our fixture tokenizer).

Encoders (tests/data/hf_enc, "enc/NAME"; run one at a time, e.g.
`... crosscheck_llamacpp.py LCPP build/release/hyperlama enc/bert`), last run
with llama-cpp-python 0.3.36 under transformers 5.25:
enc/bert (F32, a sentence-transformers directory) and enc/bert-mlm (F16,
BertForMaskedLM): all 37 tensors equal in name, shape, type and value (the
pooler and the cls.* head dropped by both, token_types / position_embd F32
in both); pooling_type, layer_norm_epsilon, causal, token_type_count,
tokenizer model, token types, bos / eos / unk / sep / pad / mask ids and
add_bos / add_eos equal. Two differences, both ours on purpose: ids the
vocabulary leaves unused are spelled "[PADn]" here, "\u2581[PADn]" there
(llama.cpp prefixes every non-control token), and we also write
tokenizer.ggml.cls_token_id (theirs absent). enc/nomic-hub: the 22 tensors
equal (Wqkv as attn_qkv, fc11 ffn_up, fc12 ffn_gate); its keys differ
because llama.cpp reads the hub config.json through transformers 5's native
NomicBertConfig, which ignores n_layer / n_inner / n_head (it writes 12
layers, 3072, 12 heads: that class's defaults). enc/xlmr and enc/nomic-hf are
not run: llama.cpp's XLM-R vocabulary needs a Precompiled normalizer
(our tiny Unigram has none) and its NomicBertModel needs the hub config's
n_positions.

llama.cpp names the pre-tokenizer by hashing the tokens of a test string,
which cannot know our freshly trained fixture tokenizers; its lookup is
replaced by the name our converter chose (the one thing not cross-checked
here; tests/store/test_convert_hf.py checks our tokenizer against HF's).
"""
from __future__ import annotations

import os
import pathlib
import re
import signal
import socket
import subprocess
import sys
import tempfile

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[2]
KEYS = ["general.architecture", "general.file_type", "{a}.context_length", "{a}.embedding_length", "{a}.block_count",
        "{a}.feed_forward_length", "{a}.attention.head_count", "{a}.attention.head_count_kv",
        "{a}.attention.layer_norm_rms_epsilon", "{a}.rope.freq_base", "tokenizer.ggml.model", "tokenizer.ggml.pre",
        "tokenizer.ggml.tokens", "tokenizer.ggml.token_type", "tokenizer.ggml.merges", "tokenizer.ggml.bos_token_id",
        "tokenizer.ggml.eos_token_id", "tokenizer.ggml.add_bos_token", "tokenizer.chat_template",
        # the families' own (absent from both files where a family has none)
        "{a}.rope.dimension_count", "{a}.attention.key_length", "{a}.attention.sliding_window",
        "{a}.expert_count", "{a}.expert_used_count", "{a}.expert_feed_forward_length",
        "{a}.expert_shared_feed_forward_length", "{a}.attn_logit_softcapping", "{a}.final_logit_softcapping",
        "{a}.embedding_scale", "{a}.attention.scale", "{a}.residual_scale", "{a}.logit_scale",
        "{a}.rope.scaling.type", "{a}.rope.scaling.factor", "{a}.rope.scaling.original_context_length",
        "{a}.rope.scaling.attn_factor",
        # encoders (tests/data/hf_enc)
        "{a}.pooling_type", "{a}.attention.layer_norm_epsilon", "{a}.attention.causal", "tokenizer.ggml.token_type_count",
        "tokenizer.ggml.cls_token_id", "tokenizer.ggml.seperator_token_id", "tokenizer.ggml.unknown_token_id",
        "tokenizer.ggml.padding_token_id", "tokenizer.ggml.mask_token_id", "tokenizer.ggml.add_eos_token",
        "tokenizer.ggml.scores", "tokenizer.ggml.add_space_prefix", "tokenizer.ggml.remove_extra_whitespaces"]
# fixture -> (llama.cpp --outtype, general.architecture)
FIXTURES = {"llama": ("f32", "llama"), "qwen2": ("f16", "qwen2"), "qwen3": ("bf16", "qwen3"),
            "phi3": ("f16", "phi3"), "granite": ("bf16", "granite"),
            "olmo2": ("f16", "olmo2"), "qwen2moe": ("bf16", "qwen2moe"), "qwen3moe": ("f16", "qwen3moe"),
            "mixtral": ("bf16", "llama"), "gptoss": ("bf16", "gpt-oss"), "gptoss_mxfp4": ("bf16", "gpt-oss"),
            # encoders, from tests/data/hf_enc (outtype: the fixture's dtype, which ours keeps)
            "enc/bert": ("f32", "bert"), "enc/bert-mlm": ("f16", "bert"), "enc/xlmr": ("f32", "bert"),
            "enc/nomic-hub": ("f32", "nomic-bert")}


def value(r, key):
    f = r.fields.get(key)
    if f is None:
        return None
    return f.contents() if hasattr(f, "contents") else [bytes(f.parts[i]) for i in f.data]


def main():
    lcpp = pathlib.Path(sys.argv[1]).resolve()
    exe = pathlib.Path(sys.argv[2] if len(sys.argv) > 2 else ROOT / "build/release/hyperlama").resolve()
    sys.path[:0] = [str(lcpp / "gguf-py"), str(lcpp)]
    import gguf
    failures = 0
    # gemma3 is left out: its converter loads our BPE fixture tokenizer through
    # AutoTokenizer as a Gemma (SentencePiece) tokenizer and fails its vocab check
    for arch in sys.argv[3:] or FIXTURES:
        outtype, ga = FIXTURES[arch]
        d = ROOT / "tests/data/hf_enc" / arch[4:] if arch.startswith("enc/") else ROOT / "tests/data/hf" / arch
        with tempfile.TemporaryDirectory() as tmp:
            tmp = pathlib.Path(tmp)
            with socket.socket() as sk:  # a fresh port: never reach a user's server
                sk.bind(("127.0.0.1", 0))
                port = sk.getsockname()[1]
            env = dict(os.environ, HYPERLAMA_MODELS=str(tmp / "store"), HOME=str(tmp), HYPERLAMA_HOST=f"127.0.0.1:{port}")
            (tmp / "Modelfile").write_text(f"FROM {d}\n")
            tag = arch.replace("/", "-")
            subprocess.run([str(exe), "create", f"x-{tag}", "-f", str(tmp / "Modelfile")], env=env, check=True,
                           capture_output=True)
            mf = subprocess.run([str(exe), "show", f"x-{tag}", "--modelfile"], env=env, check=True,
                                capture_output=True, text=True).stdout
            pidf = tmp / ".hyperlama" / "logs" / "server.pid"  # the server create started
            if pidf.exists():
                os.kill(int(pidf.read_text().split()[0]), signal.SIGTERM)
            ours = gguf.GGUFReader(re.search(r"^FROM (\S+)$", mf, re.M).group(1))
            pre = bytes(ours.fields["tokenizer.ggml.pre"].parts[-1]).decode()
            code = (f"import sys; sys.path[:0] = [{str(lcpp / 'gguf-py')!r}, {str(lcpp)!r}]\n"
                    "import conversion.base as b\n"
                    f"b.TextModel.get_vocab_base_pre = lambda self, tok: {pre!r}\n"
                    "import convert_hf_to_gguf as c\nc.main()\n")
            theirs_path = tmp / "theirs.gguf"
            r = subprocess.run([sys.executable, "-c", code, str(d), "--outfile", str(theirs_path), "--outtype", outtype],
                               capture_output=True, text=True)
            if r.returncode:
                sys.exit(f"{arch}: convert_hf_to_gguf.py failed:\n{r.stderr[-3000:]}")
            theirs = gguf.GGUFReader(str(theirs_path))
            a = ga
            ot = {t.name: t for t in ours.tensors}
            tt = {t.name: t for t in theirs.tensors}
            if set(ot) != set(tt):
                print(f"{arch}: tensor names differ: ours only {sorted(set(ot) - set(tt))}, theirs only {sorted(set(tt) - set(ot))}")
                failures += 1
            for n in sorted(set(ot) & set(tt)):
                o, t = ot[n], tt[n]
                if list(o.shape) != list(t.shape) or o.tensor_type != t.tensor_type:
                    print(f"{arch}: {n}: ours {list(o.shape)} {o.tensor_type.name}, theirs {list(t.shape)} {t.tensor_type.name}")
                    failures += 1
                elif n == "rope_freqs.weight" and np.allclose(o.data, t.data, rtol=1e-6, atol=0):
                    pass  # computed, not copied: llama.cpp's float32 frequencies vs our doubles (1 ulp)
                elif not np.array_equal(np.asarray(o.data), np.asarray(t.data)):
                    print(f"{arch}: {n}: values differ (max {np.abs(np.asarray(o.data, np.float32) - np.asarray(t.data, np.float32)).max()})")
                    failures += 1
            for k in (k.format(a=a) for k in KEYS):
                vo, vt = value(ours, k), value(theirs, k)
                if isinstance(vo, float) or isinstance(vt, float):
                    same = vo is not None and vt is not None and abs(vo - vt) <= 1e-6 * max(1, abs(vt))
                else:
                    same = vo == vt
                if os.environ.get("XC_VERBOSE"):
                    print("  ", k, str(vo)[:60], "|", str(vt)[:60])
                if not same and isinstance(vo, list) and isinstance(vt, list) and len(vo) == len(vt):
                    i = next(i for i in range(len(vo)) if vo[i] != vt[i])
                    print(f"{arch}: {k}: first difference at {i}: ours {str(vo[i])[:60]} theirs {str(vt[i])[:60]}")
                    failures += 1
                elif not same:
                    print(f"{arch}: {k}: ours {str(vo)[:120]} theirs {str(vt)[:120]}")
                    failures += 1
            print(f"{arch}: {len(tt)} tensors, {len(KEYS)} keys compared")
    print("OK" if not failures else f"{failures} differences")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
