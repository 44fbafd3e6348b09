"""End-to-end decode speed with and without a JSON Schema constraint, through a
running server (`hyperlama serve`), at batch 1 and with B concurrent requests.

    python bench/grammar/e2e.py URL MODEL [--tokens 128] [--batch 4] [--rounds 3] [--peer]

--peer: URL is llama-server (bench/build_peer.sh): the schema goes in its own
"json_schema" field, which it compiles to a grammar as we do. Run ours with
HYPERLAMA_SPECULATIVE=0 so both decode one token per step.

The constrained request asks for an array of at least 1000 objects, so the
grammar never lets it finish before max_tokens; the unconstrained one uses
ignore_eos with the same max_tokens. Reported: decode tokens per second per
request (streamed chunks, first to last), median over rounds, alternating the
two kinds within each round so a busy machine affects both alike."""
import argparse
import concurrent.futures
import statistics

import time

import requests

SCHEMA = {"type": "array", "minItems": 1000, "items": {"type": "object", "properties": {
    "id": {"type": "integer", "minimum": 0, "maximum": 100000},
    "name": {"type": "string", "maxLength": 24},
    "tags": {"type": "array", "items": {"enum": ["red", "green", "blue"]}, "maxItems": 3},
    "score": {"type": "number", "minimum": 0, "maximum": 1}},
    "required": ["id", "name", "tags", "score"], "additionalProperties": False}}

PROMPT = "Write a JSON array of many user records with id, name, tags and score."


PEER = False


def one(url, model, tokens, constrained):
    """Decode tokens/s of one streamed /v1/completions request, timed from its
    first token to its last on the client (prefill excluded)."""
    body = {"model": model, "prompt": PROMPT, "max_tokens": tokens, "temperature": 0.8, "seed": 1, "stream": True}
    if constrained and PEER:
        body["json_schema"] = SCHEMA
    elif constrained:
        body["response_format"] = {"type": "json_schema", "json_schema": {"name": "users", "schema": SCHEMA}}
    else:
        body["ignore_eos"] = True
    times = []
    with requests.post(url + "/v1/completions", json=body, timeout=600, stream=True) as r:
        r.raise_for_status()
        for line in r.iter_lines():
            if line.startswith(b"data: {"):
                times.append(time.perf_counter())
    n = len(times)
    return (n - 1) / (times[-1] - times[0]), n


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("model")
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--peer", action="store_true", help="URL is llama-server")
    a = ap.parse_args()
    global PEER
    PEER = a.peer
    one(a.url, a.model, 8, True)  # load the model and build the vocabulary index
    for batch in (1, a.batch):
        res = {False: [], True: []}
        for _ in range(a.rounds):
            for constrained in (False, True):
                with concurrent.futures.ThreadPoolExecutor(batch) as ex:
                    outs = list(ex.map(lambda _: one(a.url, a.model, a.tokens, constrained), range(batch)))
                res[constrained].append(statistics.mean(o[0] for o in outs))
        u, c = statistics.median(res[False]), statistics.median(res[True])
        print(f"batch {batch}: unconstrained {u:.2f} tok/s per request, constrained {c:.2f} tok/s ({100 * c / u:.0f}%)")


if __name__ == "__main__":
    main()
