"""Store routes with the ollama client: upload a GGUF blob, create a model
from it, list/show/generate by name, copy, delete."""
import hashlib

import ollama
import pytest
import requests


def test_blob_create_copy_delete(server, stories):
    c = ollama.Client(host=server.url)
    data = open(stories, "rb").read()
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    assert requests.head(f"{server.url}/api/blobs/{digest}").status_code == 404
    bad = requests.post(f"{server.url}/api/blobs/sha256:{'0' * 64}", data=data)
    assert bad.status_code == 400 and "mismatch" in bad.json()["error"]
    assert requests.post(f"{server.url}/api/blobs/{digest}", data=data).status_code == 201
    assert requests.head(f"{server.url}/api/blobs/{digest}").status_code == 200
    last = list(c.create(model="tiny", files={"stories260K.gguf": digest}, parameters={"temperature": 0, "num_predict": 10},
                         stream=True))[-1]
    assert last.status == "success"
    assert "tiny:latest" in [m.model for m in c.list().models]
    r = c.generate(model="tiny", prompt="Once upon a time", raw=True)
    assert r.response == ", there was a little girl named Lily"  # the Modelfile's parameters apply
    sh = c.show("tiny")
    assert "temperature" in sh.parameters and sh.details.family == "llama"
    c.copy("tiny", "tiny2")
    assert "tiny2:latest" in [m.model for m in c.list().models]
    c.delete("tiny2")
    with pytest.raises(ollama.ResponseError) as e:
        c.delete("tiny2")
    assert e.value.status_code == 404
    assert server.healthy()
