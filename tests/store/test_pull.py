"""pull against the local registry (tests/store/registry_server.py): plain,
redirected, resumed after a dropped connection, and a corrupt blob that must
be refused with the store left unchanged; plain-URL and explicit-host pulls;
kill -9 at random moments of pull and create never leaves a half model."""
import hashlib
import json
import random
import signal
import subprocess
import time
import urllib.parse

from storepaths import HYPERLAMA, SHARED
from storecheck import blob, check_store, index_names, manifests


def test_pull_plain(hl, registry):
    r = hl("pull", "stories")
    assert r.stderr.splitlines()[0] == "pulling manifest"
    assert r.stderr.splitlines()[-1] == "success"
    raw = registry.reg.manifests[("library", "stories", "latest")]
    p = manifests(hl.root)["registry.ollama.ai/library/stories:latest"]
    assert p.read_bytes() == raw
    check_store(hl.root)
    for l in json.loads(raw)["layers"]:
        assert blob(hl.root, l["digest"]).read_bytes() == registry.reg.blobs[l["digest"]]
    assert hashlib.sha256(raw).hexdigest()[:12] in hl("list").stdout
    assert "temperature    0.5" in hl("show", "stories").stdout
    # a second pull finds every blob present and downloads nothing
    n = len(registry.log)
    hl("pull", "stories")
    assert [e for e in registry.log[n:] if "/blobs/" in e[1]] == []


def test_pull_redirect(hl, registry):
    n = len(registry.log)
    hl("pull", "redirect")
    paths = [e[1] for e in registry.log[n:]]
    assert any(p.startswith("/cdn/redirect/") for p in paths)
    check_store(hl.root)


def test_pull_resume(hl, registry):
    n = len(registry.log)
    hl("pull", "flaky")
    check_store(hl.root)
    model = json.loads(registry.reg.manifests[("library", "flaky", "latest")])["layers"][0]["digest"]
    reqs = [e for e in registry.log[n:] if e[1].endswith(model)]
    assert len(reqs) >= 2 and reqs[0][2] is None and reqs[-1][2] and reqs[-1][2].startswith("bytes=")
    assert int(reqs[-1][2][6:].rstrip("-")) > 0


def test_pull_corrupt_rejected(hl, registry):
    r = hl("pull", "corrupt", check=False)
    assert r.returncode == 1
    assert "digest mismatch" in r.stderr
    assert manifests(hl.root) == {}
    model = json.loads(registry.reg.manifests[("library", "corrupt", "latest")])["layers"][0]["digest"]
    assert not blob(hl.root, model).exists()
    assert not (hl.root / "blobs" / (blob(hl.root, model).name + "-partial")).exists()
    assert hl("list").stdout.strip() == "NAME    ID    SIZE    MODIFIED"


def test_pull_missing(hl):
    r = hl("pull", "nope", check=False)
    assert r.returncode == 1 and "file does not exist" in r.stderr


def test_pull_explicit_host_and_url(hl, registry):
    host = registry.url[len("http://"):]
    hl("pull", f"{host}/library/stories:q8")
    assert f"registry.ollama.ai/library/stories:latest" not in manifests(hl.root)
    assert f"{host}/library/stories:q8" in manifests(hl.root)
    hl("pull", f"{registry.url}/files/stories260K-Q8_0.gguf")
    assert "registry.ollama.ai/library/stories260K-Q8_0:latest" in manifests(hl.root)
    check_store(hl.root)
    out = hl("list").stdout
    assert f"{host}/library/stories:q8" in out and "stories260K-Q8_0:latest" in out


def test_pull_refuses_plain_http_elsewhere(hl):
    r = hl("pull", "http://example.com/x.gguf", check=False)
    assert r.returncode == 1 and "refusing plain http" in r.stderr


def kill_loop(hl, argv, rounds, max_delay):
    rng = random.Random(1234)
    for i in range(rounds):
        p = subprocess.Popen([str(HYPERLAMA), *argv], env=hl.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0, max_delay))
        p.send_signal(signal.SIGKILL)
        p.wait()
        check_store(hl.root)  # no dangling manifest, no corrupt blob named by one
    # the index agrees with the manifests after a refresh
    hl("list")
    assert index_names(hl.root) == set(manifests(hl.root))


def test_kill_pull_anytime(hl):
    kill_loop(hl, ["pull", "slow"], 8, 0.6)
    hl("pull", "slow")  # resumes from whatever partial is left
    check_store(hl.root)
    assert "registry.ollama.ai/library/slow:latest" in manifests(hl.root)


def test_kill_create_anytime(hl, tmp_path):
    mf = tmp_path / "Modelfile"
    mf.write_text(f"FROM {SHARED / 'models' / 'stories260K-F16.gguf'}\nSYSTEM hi\n")
    kill_loop(hl, ["create", "c", "-f", str(mf), "--quantize", "q8_0"], 8, 0.3)
    hl("create", "c", "-f", mf)
    check_store(hl.root)


def test_pull_progress_without_terminal(hl, registry):
    """stderr is a pipe (not a TTY): one line per status, none twice, and every
    blob of the manifest reported exactly once, complete."""
    for model in ("stories", "flaky"):
        r = hl("pull", model)
        lines = r.stderr.splitlines()
        assert len(lines) == len(set(lines)), r.stderr
        assert "\r" not in r.stderr and "\x1b" not in r.stderr
        assert lines[0] == "pulling manifest" and lines[-1] == "success"
        assert "verifying sha256 digest" in lines and "writing manifest" in lines
        man = json.loads(registry.reg.manifests[("library", model, "latest")])
        digests = {l["digest"] for l in man["layers"]} | {man["config"]["digest"]}
        blob_lines = [l for l in lines if l.startswith("pulling ") and l != "pulling manifest"]
        assert len(blob_lines) == len(digests), r.stderr
        for d in digests:
            mine = [l for l in blob_lines if l.startswith(f"pulling {d[7:19]}: ")]
            assert len(mine) == 1 and mine[0].split(": ", 1)[1].startswith("100% "), (d, r.stderr)


def _auth_headers(registry, n):
    return [(e[1], e[3]) for e in registry.log[n:]]


def test_pull_bearer_auth(hl, registry):
    """401 + WWW-Authenticate -> token from the realm (service and scope
    URL-encoded) -> manifest and blobs with the token; the blobs' CDN (another
    origin) never sees the token, or it would answer 400."""
    for model in ("auth", "authaccess"):
        n = len(registry.log)
        r = hl("pull", model)
        assert r.stderr.splitlines()[-1] == "success"
        raw = registry.reg.manifests[("library", model, "latest")]
        assert manifests(hl.root)[f"registry.ollama.ai/library/{model}:latest"].read_bytes() == raw
        for l in json.loads(raw)["layers"]:
            assert blob(hl.root, l["digest"]).read_bytes() == registry.reg.blobs[l["digest"]]
        check_store(hl.root)
        reqs = _auth_headers(registry, n)
        tokens = [p for p, _ in reqs if p.startswith("/token?")]
        assert len(tokens) == 1, reqs  # one token for the whole pull
        q = urllib.parse.parse_qs(urllib.parse.urlsplit(tokens[0]).query)
        assert q == {"service": ["test registry, v2"], "scope": [f"repository:library/{model}:pull"]}
        assert all(a is None for p, a in reqs if p.startswith("/cdn/") or p.startswith("/token"))
        blobs = [(p, a) for p, a in reqs if "/blobs/" in p]
        assert blobs and all(a and a.startswith("Bearer ") for p, a in blobs[-len(json.loads(raw)["layers"]):])
        assert any(p.startswith(f"/cdn/{model}/") for p, _ in reqs)


def test_pull_bearer_auth_errors_leave_store_unchanged(hl, registry):
    hl("pull", "stories")
    before = {p: p.read_bytes() for p in (hl.root / "blobs").iterdir()}
    for model, words in [("authbad", ["token endpoint", "HTTP 500", "127.0.0.1"]),
                         ("authdeny", ["refused the token", "127.0.0.1"]),
                         ("authmalformed", ["WWW-Authenticate", "unterminated", "127.0.0.1"])]:
        r = hl("pull", model, check=False)
        assert r.returncode == 1, r.stderr
        err = r.stderr.splitlines()[-1]
        assert err.startswith("Error: ") and all(w in err for w in words), (model, err)
        assert set(manifests(hl.root)) == {"registry.ollama.ai/library/stories:latest"}
        assert {p: p.read_bytes() for p in (hl.root / "blobs").iterdir()} == before
        check_store(hl.root)
