"""Runs every C unit-test binary, in the release build and under ASan+UBSan,
with each C test its own pytest item.

At collection, `BINARY --list` gives each binary's test names (tests/unit/
harness.c); an item is (build mode, binary, test name), id
"<mode>/tests/<module>/<binary>:<test>". The first item of a binary runs the
whole binary once (the output is kept for the session) and every item reads
its own verdict from it: after whatever a test prints, the harness writes
"ok   NAME", "FAIL NAME" or "skip NAME", in registration order. An item
passes, fails with the lines its test printed, or is skipped with the
reason hl_test_skip gave ("    skipped: why"). If the binary crashes, times
out or stops early, the tests that got no verdict fail, the first of them
with the output since the last verdict (a sanitizer report lands there). A
last item per binary, "<binary>:(exit)", checks the exit status and the
closing "N passed, N failed, N skipped" line, so a failure after the last
test (a leak report at exit) is not lost."""
import functools
import json
import os
import pathlib
import re
import subprocess

import pytest

from hltest import BUILD, ROOT

TIMEOUT = 1200  # seconds, for one whole binary
EXIT = "(exit)"  # the per-binary item that checks the exit status
SUMMARY = re.compile(r"^(\d+) passed, (\d+) failed, (\d+) skipped$")
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def env(binary=None):
    e = dict(os.environ)
    e.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
    e.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
    if binary is not None and "asan" in binary.parts:
        pre = keep_vulkan_drivers_loaded(str(binary))
        if pre:
            e["LD_PRELOAD"] = " ".join(filter(None, [pre, e.get("LD_PRELOAD")]))
    return e


@functools.lru_cache(maxsize=None)
def keep_vulkan_drivers_loaded(binary):
    """LD_PRELOAD for an ASan binary: its ASan runtime (which must come first)
    and the Vulkan drivers' libraries named by the installed ICD manifests.
    lavapipe (LLVM under it) keeps a one-time allocation in a static on some
    hosts (seen on an AVX-512 EPYC: 128 bytes under a pthread_once in
    vkEnumeratePhysicalDevices); the Vulkan loader unloads the driver at
    vkDestroyInstance, and LeakSanitizer, scanning at exit, then finds that
    block unreachable and calls it our leak. A preloaded driver stays mapped,
    so its statics stay roots: its own allocations are not reported, ours
    still are. "" when there is no driver manifest or no ASan runtime."""
    libs = []
    for d in ("/usr/share/vulkan/icd.d", "/etc/vulkan/icd.d"):
        for m in sorted(pathlib.Path(d).glob("*.json")) if pathlib.Path(d).is_dir() else []:
            try:
                lib = json.loads(m.read_text())["ICD"]["library_path"]
            except (OSError, ValueError, KeyError, TypeError):
                continue
            if os.path.isabs(lib) and os.path.exists(lib) and lib not in libs:
                libs.append(lib)
    if not libs:
        return ""
    try:
        ldd = subprocess.run(["ldd", binary], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.TimeoutExpired):
        return ""
    rt = re.search(r"^\s*libasan\.so\S*\s+=>\s+(\S+)", ldd, re.M)
    return " ".join([rt.group(1), *libs]) if rt else ""


def binaries():
    """Test binaries of each build whose source still exists (a binary left
    in build/ by a test since renamed or removed is not run)."""
    out = []
    for mode in ("release", "asan"):
        base = BUILD / mode / "tests"
        if not base.exists():
            continue
        for p in sorted(base.rglob("test_*")):
            src = ROOT / "tests" / "unit" / p.relative_to(base).with_suffix(".c")
            if p.is_file() and os.access(p, os.X_OK) and src.exists():
                out.append(p)
    return out


def list_tests(binary):
    """The binary's test names, or an error string."""
    try:
        r = subprocess.run([str(binary), "--list"], cwd=ROOT, env=env(), capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        return "`--list` timed out"
    names = r.stdout.splitlines()
    if r.returncode != 0 or not names or not all(NAME.match(n) for n in names):
        return (f"`{binary.name} --list` did not print test names (rc {r.returncode}; a binary built before "
                f"the harness had --list? run make tests):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    return names


def items():
    out = []
    for b in binaries():
        rel = str(b.relative_to(BUILD))
        names = list_tests(b)
        if isinstance(names, str):
            out.append(pytest.param(b, None, names, id=f"{rel}:(list)"))
            continue
        out += [pytest.param(b, n, tuple(names), id=f"{rel}:{n}") for n in names]
        out.append(pytest.param(b, EXIT, tuple(names), id=f"{rel}:{EXIT}"))
    if not out:  # not an empty parameter set, which pytest would only skip
        out.append(pytest.param(None, None, f"no unit-test binaries under {BUILD}/<mode>/tests: run make tests",
                                id="(none built)"))
    return out


class Run:
    """One run of a whole binary, parsed into per-test results."""

    def __init__(self, binary, names):
        self.binary, self.names = binary, names
        self.timed_out = False
        try:
            # stderr joins stdout so a test's (or a sanitizer's) messages sit
            # between its neighbours' verdict lines
            r = subprocess.run([str(binary)], cwd=ROOT, env=env(binary), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, timeout=TIMEOUT)
            raw, self.rc = r.stdout, r.returncode
        except subprocess.TimeoutExpired as e:
            raw, self.rc, self.timed_out = e.stdout or b"", None, True
        self.output = raw.decode("utf-8", errors="replace")
        self.verdicts = {}  # name -> (verdict, the lines the test printed)
        self.summary = None
        chunk, k = [], 0
        lines = self.output.splitlines()
        for i, line in enumerate(lines):
            if k < len(names):
                m = re.fullmatch(r"(ok|FAIL|skip) +(\S+)", line)
                if m and m.group(2) == names[k]:
                    self.verdicts[names[k]] = (m.group(1), chunk)
                    chunk, k = [], k + 1
                    continue
            elif SUMMARY.match(line) and self.summary is None:
                self.summary = SUMMARY.match(line)
                continue
            chunk.append(line)
        self.rest = chunk  # after the last verdict: a crash report, or what follows the summary
        self.first_missing = names[k] if k < len(names) else None

    def how_it_ended(self):
        if self.timed_out:
            return f"{self.binary.name} timed out after {TIMEOUT} s"
        if self.rc is not None and self.rc < 0:
            return f"{self.binary.name} was killed by signal {-self.rc}"
        return f"{self.binary.name} exited with status {self.rc}"

    def check(self, name):
        if name == EXIT:
            return self.check_exit()
        if name not in self.verdicts:
            if name == self.first_missing:
                tail = "\n".join(self.rest)[-8000:]
                pytest.fail(f"{self.how_it_ended()} while running {name} (no verdict); its output:\n{tail}",
                            pytrace=False)
            pytest.fail(f"not run: {self.how_it_ended()} during {self.first_missing}", pytrace=False)
        verdict, lines = self.verdicts[name]
        text = "\n".join(lines)
        if verdict == "FAIL":
            pytest.fail(f"{name} failed:\n{text[-8000:]}", pytrace=False)
        print(text)
        if verdict == "skip":
            reasons = []
            for line in lines:
                if line.startswith("    skipped: ") and line[13:] not in reasons:
                    reasons.append(line[13:])
            pytest.skip(f"{self.binary.relative_to(BUILD)}:{name}: " + ("; ".join(reasons) or "(no reason printed)"))

    def check_exit(self):
        tail = "\n".join(self.rest)[-8000:]
        if self.first_missing is not None:
            pytest.fail(f"{self.how_it_ended()} before every test had a verdict", pytrace=False)
        failed = sum(v == "FAIL" for v, _ in self.verdicts.values())
        if self.summary is None:
            pytest.fail(f"{self.how_it_ended()} without the closing summary line:\n{tail}", pytrace=False)
        counts = [int(x) for x in self.summary.groups()]
        want = [sum(v == "ok" for v, _ in self.verdicts.values()), failed,
                sum(v == "skip" for v, _ in self.verdicts.values())]
        if counts != want:
            pytest.fail(f"summary {self.summary.group(0)!r} does not match the verdicts {want}", pytrace=False)
        if self.rc != (1 if failed else 0):
            pytest.fail(f"{self.how_it_ended()} with {failed} failed test(s); after the last test:\n{tail}",
                        pytrace=False)
        if tail.strip():
            print(tail)


RUNS = {}  # binary -> Run, made on a binary's first item and kept for the session


@pytest.mark.parametrize("binary,name,names", items())
def test_unit(binary, name, names):
    if name is None:
        pytest.fail(names, pytrace=False)
    if binary not in RUNS:
        RUNS[binary] = Run(binary, names)
    RUNS[binary].check(name)
