"""`hyperlama serve --print-config`: the configuration file read by our TOML
reader agrees with Python's tomllib (an independent TOML parser) on every key
it sets, precedence is defaults < file < environment < flags, the printed
configuration is itself valid TOML that reads back to the same result, and
errors name file:line:col."""
import os
import subprocess
import tomllib

import pytest

from hltest import HYPERLAMA

FILE = """\
# comment
[server]
port = 8_081
origins = ["https://a.example", 'https://b.example']
http_threads = 0x8
max_body = 2097152
request_timeout = 30
grace_period = 0
log_format = "json"

[models]
max_loaded = 2
keep_alive = 90

[engine]
threads = 2
num_ctx = 4096
max_seqs = 4
max_queue = 7
block_size = 32
step_tokens = 256
prefix_cache = false
kv_cache_type = "q8_0"
"""


def print_config(tmp_path, text, env=None, args=()):
    cfg = tmp_path / "config.toml"
    if text is not None:
        cfg.write_text(text)
    e = {k: v for k, v in os.environ.items() if not k.startswith("HYPERLAMA_")}
    e.update({"HYPERLAMA_CONFIG": str(cfg), "HOME": str(tmp_path)}, **(env or {}))
    r = subprocess.run([str(HYPERLAMA), "serve", "--print-config", *args], env=e, capture_output=True, text=True,
                       timeout=30)
    return r


def test_file_agrees_with_tomllib(tmp_path):
    r = print_config(tmp_path, FILE)
    assert r.returncode == 0, r.stderr
    got = tomllib.loads(r.stdout)
    want = tomllib.loads(FILE)
    for table, kv in want.items():
        for k, v in kv.items():
            if k == "keep_alive":
                assert got[table][k] == f"{v}s"
            else:
                assert got[table][k] == v, (table, k)
    assert got["server"]["host"] == "127.0.0.1"  # untouched: default
    # the printed configuration reads back to itself
    again = print_config(tmp_path, r.stdout.replace('"(set)"', '""'))
    assert again.returncode == 0, again.stderr
    assert tomllib.loads(again.stdout) == got


def test_precedence_env_over_file_flags_over_env(tmp_path):
    env = {"HYPERLAMA_HOST": "0.0.0.0:9000", "HYPERLAMA_NUM_PARALLEL": "5", "HYPERLAMA_KEEP_ALIVE": "2m",
           "HYPERLAMA_KV_BUDGET": "64MiB", "HYPERLAMA_ORIGINS": "https://c.example"}
    got = tomllib.loads(print_config(tmp_path, FILE, env).stdout)
    assert got["server"]["host"] == "0.0.0.0" and got["server"]["port"] == 9000
    assert got["engine"]["max_seqs"] == 5 and got["models"]["keep_alive"] == "120s"
    assert got["engine"]["kv_budget"] == 64 << 20
    assert got["server"]["origins"] == ["https://a.example", "https://b.example", "https://c.example"]
    assert got["engine"]["max_queue"] == 7  # the file's, nothing overrides it
    got = tomllib.loads(print_config(tmp_path, FILE, env, ["--port", "9100", "--parallel", "3", "--keep-alive", "-1",
                                                           "--api-key", "secret-key-1"]).stdout)
    assert got["server"]["port"] == 9100 and got["engine"]["max_seqs"] == 3
    assert got["models"]["keep_alive"] == "-1"
    assert got["server"]["api_key"] == "(set)"  # never printed


def test_missing_file_is_defaults_and_not_created_by_print(tmp_path):
    r = print_config(tmp_path, None)
    assert r.returncode == 0
    got = tomllib.loads(r.stdout)
    assert got["server"]["port"] == 11434 and got["engine"]["prefix_cache"] is True
    assert got["engine"]["kv_cache_type"] == "f16"
    assert not (tmp_path / "config.toml").exists()


@pytest.mark.parametrize("text,where", [
    ("[server]\nport = \"80\"\n", ":2:8: server.port must be an integer, not a string"),
    ("[server]\n\nbogus = 1\n", ":3:9: unknown setting 'server.bogus'"),
    ("[engine]\nthreads = 01\n", ":2:13: leading zeros are not allowed"),
    ("[server]\nport = 1\nport = 2\n", ":3:1: key 'server.port' is defined twice"),
    ("[engine]\nkv_cache_type = \"q4_0\"\n", ":2:17: kv_cache_type must be \"f16\" or \"q8_0\""),
])
def test_errors_name_file_line_col(tmp_path, text, where):
    r = print_config(tmp_path, text)
    assert r.returncode != 0
    assert str(tmp_path / "config.toml") + where in r.stderr


@pytest.mark.parametrize("env,flag", [({"HYPERLAMA_NUM_PARALLEL": "many"}, "HYPERLAMA_NUM_PARALLEL"),
                                      ({"HYPERLAMA_KEEP_ALIVE": "soon"}, "HYPERLAMA_KEEP_ALIVE"),
                                      ({"HYPERLAMA_KV_CACHE_TYPE": "q4"}, "HYPERLAMA_KV_CACHE_TYPE")])
def test_bad_environment_is_named(tmp_path, env, flag):
    r = print_config(tmp_path, "", env)
    assert r.returncode != 0 and flag in r.stderr
    r = print_config(tmp_path, "", None, ["--port", ""])
    assert r.returncode != 0 and "--port" in r.stderr
