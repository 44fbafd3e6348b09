"""Plain-HTTP edge cases: malformed JSON, wrong types, huge bodies, unknown
routes and models, CORS, the API key, config errors; the server stays healthy
after each."""
import subprocess

import pytest
import requests


@pytest.mark.parametrize("body,needle", [
    (b"{", "invalid JSON"),
    (b"[1,2]", "object"),
    (b'{"model": 5}', "model"),
    (b'{"model": "x", "prompt": 3}', "prompt"),
    (b'{"model": "x"} trailing', "invalid JSON"),
    (b'{"model": "\xff\xfe"}', "invalid JSON"),
    (b'{"model": "x", "options": []}', "options"),
    (b'{"model": "x", "keep_alive": "5 parsecs"}', "keep_alive"),
    (b'{"model": "x", "format": "yaml"}', "format"),
    (b'{"model": "x", "format": {"type": "array", "uniqueItems": true}}', "uniqueItems"),
    (b"", "body"),
])
def test_bad_bodies(server, body, needle):
    r = requests.post(server.url + "/api/generate", data=body)
    assert r.status_code == 400
    assert needle in r.json()["error"]
    assert server.healthy()


def test_openai_bad_bodies(server):
    r = requests.post(server.url + "/v1/chat/completions", data=b'{"model": "m", "messages": "hi"}')
    assert r.status_code == 400
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"} and err["param"] == "messages"
    r = requests.post(server.url + "/v1/chat/completions", json={"model": "m", "messages": [{"role": "user", "content": "x"}],
                                                                 "response_format": {"type": "xml"}})
    assert r.status_code == 400 and r.json()["error"]["param"] == "response_format"
    # an unknown field is ignored (server.strict_requests refuses it): the error is the missing model
    r = requests.post(server.url + "/v1/completions", json={"model": "m", "prompt": "x", "frobnicate": 1})
    assert r.status_code == 404 and r.json()["error"]["param"] == "model"
    assert server.healthy()


def test_huge_body(server):
    r = requests.post(server.url + "/api/generate", data=b"{" + b" " * (17 << 20) + b"}")
    assert r.status_code == 413
    assert server.healthy()


def test_routes(server):
    assert requests.get(server.url + "/").text == "Ollama is running"
    assert requests.head(server.url + "/").status_code == 200
    assert requests.get(server.url + "/nope").status_code == 404
    assert requests.get(server.url + "/api/generate").status_code == 405
    assert requests.get(server.url + "/api/version").json()["version"]
    m = requests.get(server.url + "/metrics")
    assert m.status_code == 200 and "hyperlama_time_to_first_token_seconds_bucket" in m.text


def test_cors(server):
    r = requests.options(server.url + "/api/chat", headers={"Origin": "http://localhost:3000",
                                                            "Access-Control-Request-Method": "POST"})
    assert r.status_code == 204 and r.headers["Access-Control-Allow-Origin"] == "http://localhost:3000"
    r = requests.get(server.url + "/api/version", headers={"Origin": "https://evil.example"})
    assert r.status_code == 403
    r = requests.get(server.url + "/api/version", headers={"Origin": "app://obsidian.md"})
    assert r.status_code == 200 and r.headers["Access-Control-Allow-Origin"] == "app://obsidian.md"


def test_origins_env_and_api_key(make_server):
    s = make_server({"HYPERLAMA_ORIGINS": "https://app.example", "HYPERLAMA_API_KEY": "sekrit-key-123"})
    assert requests.get(s.url + "/health").status_code == 200  # /health needs no key
    assert requests.get(s.url + "/api/version").status_code == 401
    assert requests.get(s.url + "/v1/models", headers={"Authorization": "Bearer wrong"}).json()["error"]["code"] == "invalid_api_key"
    h = {"Authorization": "Bearer sekrit-key-123", "Origin": "https://app.example"}
    r = requests.get(s.url + "/api/version", headers=h)
    assert r.status_code == 200 and r.headers["Access-Control-Allow-Origin"] == "https://app.example"


def test_config_file_and_print_config(tmp_path, server):
    from hltest import HYPERLAMA
    cfg = tmp_path / "c.toml"
    cfg.write_text('[server]\nport = 12345\norigins = ["https://a.example"]\n[models]\nkeep_alive = "10m"\n')
    env = {"HYPERLAMA_CONFIG": str(cfg), "PATH": "/usr/bin:/bin", "HYPERLAMA_HOST": "127.0.0.1:23456"}
    out = subprocess.run([str(HYPERLAMA), "serve", "--print-config", "--max-loaded", "2"], env=env,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "port = 23456" in out.stdout  # environment beats the file
    assert 'keep_alive = "600s"' in out.stdout and "https://a.example" in out.stdout and "max_loaded = 2" in out.stdout
    cfg.write_text('[server]\nport = "high"\n')
    out = subprocess.run([str(HYPERLAMA), "serve", "--print-config"], env=env, capture_output=True, text=True)
    assert out.returncode == 1 and f"{cfg}:2:8" in out.stderr and "integer" in out.stderr
    cfg.write_text('[server]\nprot = 1\n')
    out = subprocess.run([str(HYPERLAMA), "serve", "--print-config"], env=env, capture_output=True, text=True)
    assert out.returncode == 1 and "unknown setting 'server.prot'" in out.stderr
    # first start writes commented defaults, which parse back
    assert (server.tmp / "config.toml").read_text().startswith("# HyperLlama server configuration")


def test_non_loopback_warning(make_server):
    s = make_server(args=("--host", "0.0.0.0"))
    assert "without an API key" in s.logtext()
