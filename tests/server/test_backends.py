"""Backends as the server uses them: one thread pool for the whole process,
shared by every loaded model (two busy models take turns, each model's output
unchanged); engine.backend / HYPERLAMA_BACKEND choose what runs the models, and
the reference backend serves the same greedy text as the CPU's; bad settings
are refused with a clear message."""
import hashlib
import json
import os
import pathlib
import re
import subprocess
from concurrent.futures import ThreadPoolExecutor

import requests

from conftest import HYPERLAMA


def generate(url, model, prompt, n=24, **options):
    r = requests.post(url + "/api/generate", json={"model": model, "prompt": prompt, "raw": True, "stream": False,
                                                   "options": {"temperature": 0, "num_predict": n, **options}},
                      timeout=300)
    assert r.status_code == 200, r.text
    return r.json()["response"]


def threads_of(pid):
    return len(os.listdir(f"/proc/{pid}/task"))



def create_offloaded(srv, gguf):
    """Stores `gguf` on srv as the model "offloaded", with PARAMETER num_gpu 1
    (the Modelfile way to place one layer on the GPU)."""
    data = pathlib.Path(gguf).read_bytes()
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    assert requests.post(f"{srv.url}/api/blobs/{digest}", data=data, timeout=60).status_code == 201
    r = requests.post(srv.url + "/api/create", json={"model": "offloaded", "files": {"stories.gguf": digest},
                                                      "parameters": {"num_gpu": 1}, "stream": False}, timeout=120)
    assert r.status_code == 200, r.text

def test_models_share_one_pool(make_server, stories, smollm):
    """A second loaded model adds its engine thread, not a pool of its own;
    both generating at once give what each gives alone."""
    s = make_server({"HYPERLAMA_NUM_THREADS": "2", "HYPERLAMA_MAX_LOADED_MODELS": "3"})
    alone_a = generate(s.url, stories, "Once upon a time")
    n1 = threads_of(s.proc.pid)
    alone_b = generate(s.url, smollm, "The capital of France is")
    n2 = threads_of(s.proc.pid)
    assert alone_a and alone_b
    assert n2 - n1 == 1, (n1, n2)  # the second model's engine thread only
    with ThreadPoolExecutor(4) as ex:
        jobs = [(stories, "Once upon a time"), (smollm, "The capital of France is")] * 2
        got = list(ex.map(lambda j: generate(s.url, *j), jobs))
    assert got == [alone_a, alone_b, alone_a, alone_b]
    log = s.logtext()
    assert "backend: cpu (2 compute threads shared by every model)" in log or "backend: vulkan on " in log
    # auto: a GPU, or one line saying why not (lavapipe, a CPU implementation, is never taken)
    assert "backend: vulkan on " in log or "no GPU: " in log and "; running on the CPU" in log, log[:3000]


def test_reference_backend_serves_the_same_text(make_server, stories):
    """The whole server on the scalar reference backend: nothing above the
    model knows which backend runs, and greedy text matches the CPU's (both
    compute the same integer sums; float order differs by ~1e-6, far below
    any logit gap in these 24 tokens)."""
    cpu = make_server({"HYPERLAMA_BACKEND": "cpu"})
    ref = make_server({"HYPERLAMA_BACKEND": "ref"})
    for prompt in ("Once upon a time", "Lily and Tom"):
        a, b = generate(cpu.url, stories, prompt), generate(ref.url, stories, prompt)
        assert a and a == b, (a, b)
    assert "backend: ref" in ref.logtext()


def test_vulkan_backend_serves_the_same_text(make_server, stories):
    """The whole server on the Vulkan backend (lavapipe in CI: vulkan:N names
    a device even when it is a CPU implementation): greedy text equals the
    CPU's, and 8 concurrent greedy streams each equal the same request alone
    (the kernels sum in a fixed order per row, so a sequence's logits do not
    depend on the batch it shares; tests/unit/model/test_vk_model.c checks
    that bit for bit)."""
    dev = os.environ.get("HYPERLAMA_VULKAN_DEVICE", "0")
    cpu = make_server({"HYPERLAMA_BACKEND": "cpu"})
    vk = make_server({"HYPERLAMA_BACKEND": f"vulkan:{dev}"})
    prompts = ["Once upon a time", "Lily and Tom", "The little dog", "One day, a girl"]
    alone = {p: generate(vk.url, stories, p) for p in prompts}
    for p in prompts[:2]:
        assert alone[p] and alone[p] == generate(cpu.url, stories, p), p
    with ThreadPoolExecutor(8) as ex:
        got = list(ex.map(lambda p: generate(vk.url, stories, p), prompts * 2))
    assert got == [alone[p] for p in prompts * 2]
    log = vk.logtext()
    assert "backend: vulkan on " in log and "running it on the CPU" not in log, log[-2000:]
    # the banner names the device and what it can do; ps reports the model in GPU memory
    assert "GPU: " in log and "Vulkan 1." in log and "GiB" in log, log[:3000]
    for srv, proc in ((vk, "100% GPU"), (cpu, "100% CPU")):
        m, shown = ps_of(srv, stories)
        assert m["size_vram"] == (m["size"] if proc == "100% GPU" else 0), m
        assert proc in shown, shown
    # partial offload (Ollama's num_gpu option): the last 2 of 5 layers and the
    # output on the GPU, the rest on the CPU; same greedy text; another
    # num_gpu reloads the model (as Ollama does); 0 puts it all on the CPU
    p = prompts[0]
    assert generate(vk.url, stories, p, num_gpu=2) == alone[p]
    m, shown = ps_of(vk, stories)
    assert 0 < m["size_vram"] < m["size"], m
    share = round(100 * m["size_vram"] / m["size"])
    assert f"{100 - share}%/{share}% CPU/GPU" in shown, shown
    assert "vulkan (2 of 5 layers, the rest on cpu)" in vk.logtext()
    assert generate(vk.url, stories, p, num_gpu=0) == alone[p]
    m, shown = ps_of(vk, stories)
    assert m["size_vram"] == 0 and "100% CPU" in shown, (m, shown)
    # a Modelfile PARAMETER num_gpu places the model it defines
    create_offloaded(vk, stories)
    assert generate(vk.url, "offloaded", p) == alone[p]
    assert "vulkan (1 of 5 layers, the rest on cpu)" in vk.logtext()
    # the in-process path: hyperlama run FILE --num-gpu N
    for n in (0, 1, 5):
        out = subprocess.run([str(HYPERLAMA), "run", stories, p, "--num-predict", "24", "--temperature", "0",
                              "--backend", f"vulkan:{dev}", "--num-gpu", str(n)], capture_output=True, text=True,
                             timeout=120)
        assert out.returncode == 0 and out.stdout.strip() == alone[p].strip(), (n, out.stdout, out.stderr[-500:])


def ps_of(srv, model):
    """(/api/ps's entry for model, `hyperlama ps` output)"""
    m = next(x for x in requests.get(srv.url + "/api/ps", timeout=10).json()["models"] if x["model"].endswith(model.split("/")[-1]))
    out = subprocess.run([str(HYPERLAMA), "ps"], env=dict(os.environ, HYPERLAMA_HOST=srv.url), capture_output=True,
                         text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return m, out.stdout


def test_gpu_memory_fraction_refuses_or_falls_back(make_server, stories):
    """engine.gpu_memory_fraction bounds what models take of the GPU: a model
    that does not fit in it is refused on an explicit vulkan backend with
    what it needs, what there is and what to try; under auto (here made to
    take lavapipe by HYPERLAMA_VULKAN_DEVICE) it runs on the CPU instead,
    with a log line saying why, and /api/ps shows it off the GPU; with room
    for some of its layers, auto offloads those."""
    dev = os.environ.get("HYPERLAMA_VULKAN_DEVICE", "0")
    tight = {"HYPERLAMA_GPU_MEMORY_FRACTION": "0.000001", "HYPERLAMA_VULKAN_DEVICE": dev}
    vk = make_server(dict(tight, HYPERLAMA_BACKEND=f"vulkan:{dev}"))
    r = requests.post(vk.url + "/api/generate", json={"model": stories, "prompt": "Once", "stream": False}, timeout=60)
    assert r.status_code >= 400, r.text
    msg = r.json()["error"]
    for part in ("model requires more GPU memory on ", "of weights", "than is available",
                 "engine.gpu_memory_fraction 1e-06", "Try a smaller quantization"):
        assert part in msg, msg
    auto = make_server(tight)
    text = generate(auto.url, stories, "Once upon a time", 8)
    assert text
    log = auto.logtext()
    assert "backend: vulkan on " in log and "model requires more GPU memory" in log and "running it on the CPU" in log, log[-3000:]
    m = requests.get(auto.url + "/api/ps", timeout=10).json()["models"][0]
    assert m["size_vram"] == 0 and m["size"] > 0, m
    # room for some layers (0.3% of lavapipe's 2 GiB: ~6 MiB, less than the whole model with its step buffers
    # and KV): auto offloads as many as fit, the rest on the CPU, same text
    part = make_server({"HYPERLAMA_GPU_MEMORY_FRACTION": "0.003", "HYPERLAMA_VULKAN_DEVICE": dev})
    assert generate(part.url, stories, "Once upon a time", 8) == text
    log = part.logtext()
    assert "layers to the GPU, the rest on the CPU" in log and "the rest on cpu)" in log, log[-3000:]
    m, shown = ps_of(part, stories)
    assert 0 < m["size_vram"] < m["size"] and "CPU/GPU" in shown, (m, shown)


def test_bad_backend_settings_are_refused(tmp_path):
    env = dict(os.environ, HYPERLAMA_CONFIG=str(tmp_path / "config.toml"), HYPERLAMA_MODELS=str(tmp_path / "m"),
               HYPERLAMA_BACKEND="quantum")
    r = subprocess.run([str(HYPERLAMA), "serve", "--print-config"], env=env, capture_output=True, text=True, timeout=30)
    assert r.returncode != 0 and "HYPERLAMA_BACKEND=\"quantum\": expected one of auto, cpu, ref, vulkan" in r.stderr, r.stderr
    (tmp_path / "config.toml").write_text('[engine]\nbackend = "gpu"\n')
    env.pop("HYPERLAMA_BACKEND")
    r = subprocess.run([str(HYPERLAMA), "serve", "--print-config"], env=env, capture_output=True, text=True, timeout=30)
    assert r.returncode != 0 and "config.toml:2:" in r.stderr and "backend must be" in r.stderr, r.stderr
    (tmp_path / "config.toml").write_text('[engine]\ngpu_memory_fraction = 1.5\n')
    r = subprocess.run([str(HYPERLAMA), "serve", "--print-config"], env=env, capture_output=True, text=True, timeout=30)
    assert r.returncode != 0 and "gpu_memory_fraction must be more than 0 and at most 1" in r.stderr, r.stderr
    (tmp_path / "config.toml").write_text('[engine]\nbackend = "ref"\ngpu_memory_fraction = 0.5\n')
    r = subprocess.run([str(HYPERLAMA), "serve", "--print-config"], env=dict(env, HYPERLAMA_GPU_MEMORY_FRACTION="x"),
                       capture_output=True, text=True, timeout=30)
    assert r.returncode != 0 and "HYPERLAMA_GPU_MEMORY_FRACTION" in r.stderr, r.stderr
    r = subprocess.run([str(HYPERLAMA), "serve", "--print-config"], env=env, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and 'backend = "ref"' in r.stdout and "gpu_memory_fraction = 0.5" in r.stdout, r.stdout + r.stderr
    r = subprocess.run([str(HYPERLAMA), "serve", "--print-config"], env=dict(env, HYPERLAMA_VULKAN_DEVICE="3"),
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and "vulkan_device = 3" in r.stdout, r.stdout + r.stderr


def test_show_names_the_backend_and_drafts_follow_num_gpu(make_server, stories):
    """/api/show's `backend` (and `hyperlama show`'s row) says where a model
    runs or would: the CPU on a CPU server; on the Vulkan backend (lavapipe
    named by index) all layers, or the last N of a Modelfile's num_gpu, and
    a loaded model's placement once it runs. A draft model follows the
    request's num_gpu as its target does: with num_gpu 0 both run on the CPU,
    with num_gpu 2 the draft's last 2 layers are on the GPU; the text stays
    the target's."""
    dev = os.environ.get("HYPERLAMA_VULKAN_DEVICE", "0")
    cpu = make_server({"HYPERLAMA_BACKEND": "cpu"})
    show = requests.post(cpu.url + "/api/show", json={"model": stories}, timeout=30).json()
    assert show["backend"] == "cpu", show["backend"]
    vk = make_server({"HYPERLAMA_BACKEND": f"vulkan:{dev}"})
    show = requests.post(vk.url + "/api/show", json={"model": stories}, timeout=30).json()
    assert show["backend"].startswith("vulkan on ") and show["backend"].endswith("(all layers)"), show["backend"]
    out = subprocess.run([str(HYPERLAMA), "show", stories], env=dict(os.environ, HYPERLAMA_HOST=vk.url),
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and re.search(r"^    backend {13}vulkan on .*\(all layers\)$", out.stdout, re.M), out.stdout
    create_offloaded(vk, stories)
    show = requests.post(vk.url + "/api/show", json={"model": "offloaded"}, timeout=30).json()
    assert show["backend"].endswith("(1 of 5 layers, the rest on cpu)"), show["backend"]
    # drafts placed by num_gpu; a loaded model's show is its placement
    q4 = str(pathlib.Path(stories).parent / "stories260K-Q4_0.gguf")
    p = "Once upon a time"
    alone = generate(vk.url, stories, p, speculative=False)
    assert generate(vk.url, stories, p, num_gpu=0, draft_model=q4) == alone
    assert re.search(r"draft model \S+ \(\S+\) for \S+ loaded, backend cpu$", vk.logtext(), re.M), vk.logtext()[-3000:]
    show = requests.post(vk.url + "/api/show", json={"model": stories}, timeout=30).json()
    assert show["backend"] == "cpu (loaded)", show["backend"]
    assert generate(vk.url, stories, p, num_gpu=2, draft_model=q4) == alone
    log = vk.logtext()
    assert "loaded, backend vulkan (2 of 5 layers, the rest on cpu)" in log, log[-3000:]
    show = requests.post(vk.url + "/api/show", json={"model": stories}, timeout=30).json()
    assert show["backend"] == "vulkan (2 of 5 layers, the rest on cpu) (loaded)", show["backend"]



def test_num_gpu_change_while_in_use_and_right_after(make_server, stories):
    """A request asking for another num_gpu while the model serves a stream
    runs on the placement the model has (the stream is not cut); the first
    request after the stream's last byte was read reloads it with the new
    placement: a model is idle once its response is produced, not when the
    HTTP library is done with the connection (that race flaked the show test
    above). Done a few times, streamed and not, to give the race its chance."""
    dev = os.environ.get("HYPERLAMA_VULKAN_DEVICE", "0")
    vk = make_server({"HYPERLAMA_BACKEND": f"vulkan:{dev}"})
    p = "Once upon a time"
    body = {"model": stories, "prompt": p, "raw": True, "stream": True,
            "options": {"temperature": 0, "num_predict": 200, "speculative": False}}
    with requests.post(vk.url + "/api/generate", json=body, stream=True, timeout=300) as r:
        lines = r.iter_lines()
        assert not json.loads(next(lines))["done"]
        kept = generate(vk.url, stories, p, 8, num_gpu=0)  # while the stream runs: kept on vulkan
        chunks = [json.loads(x) for x in lines]
    assert chunks[-1]["done"] and chunks[-1]["eval_count"] == 200, chunks[-1]
    assert not re.search(r"loaded stories260K\.gguf .*, backend cpu$", vk.logtext(), re.M), vk.logtext()[-3000:]
    want = requests.post(vk.url + "/api/show", json={"model": stories}, timeout=30).json()["backend"]
    assert want == "vulkan (loaded)", want
    for i in range(4):
        ngpu = 0 if i % 2 == 0 else -1
        if i < 2:
            generate(vk.url, stories, p, 8, num_gpu=-1 if ngpu == 0 else 0)
        else:
            with requests.post(vk.url + "/api/generate", json=dict(body, options=dict(
                    body["options"], num_predict=8, num_gpu=-1 if ngpu == 0 else 0)), stream=True, timeout=300) as r:
                assert json.loads(list(r.iter_lines())[-1])["done"]
        assert generate(vk.url, stories, p, 8, num_gpu=ngpu) == kept
        show = requests.post(vk.url + "/api/show", json={"model": stories}, timeout=30).json()["backend"]
        assert show == ("cpu (loaded)" if ngpu == 0 else "vulkan (loaded)"), (i, show)
