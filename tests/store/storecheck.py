"""An independent checker of a store folder: every manifest parses, names only
blobs that exist with the right size and sha256, and the SQLite index (when
refreshed) has exactly one row per manifest."""
import hashlib
import json
import pathlib
import sqlite3


def manifests(root):
    root = pathlib.Path(root)
    out = {}
    base = root / "manifests"
    if not base.exists():
        return out
    for p in base.glob("*/*/*/*"):
        if p.is_file() and ".tmp." not in p.name:
            host, ns, model, tag = p.relative_to(base).parts
            out[f"{host}/{ns}/{model}:{tag}"] = p
    return out


def blob(root, digest):
    return pathlib.Path(root) / "blobs" / ("sha256-" + digest.split(":")[1])


def check_store(root, hash_blobs=True):
    root = pathlib.Path(root)
    for name, p in manifests(root).items():
        m = json.loads(p.read_bytes())
        assert m["schemaVersion"] == 2, name
        for layer in [m["config"]] + m["layers"]:
            b = blob(root, layer["digest"])
            assert b.exists(), f"{name}: dangling manifest, blob {layer['digest']} missing"
            assert b.stat().st_size == layer["size"], f"{name}: blob {layer['digest']} has the wrong size"
            if hash_blobs:
                assert "sha256:" + hashlib.sha256(b.read_bytes()).hexdigest() == layer["digest"], f"{name}: corrupt blob"


def index_names(root):
    db = pathlib.Path(root) / "index.db"
    con = sqlite3.connect(str(db))
    try:
        return {r[0] for r in con.execute("SELECT name FROM models")}
    finally:
        con.close()
