"""The reference: Python jinja2 configured the way Hugging Face transformers
renders chat templates (ImmutableSandboxedEnvironment with trim_blocks and
lstrip_blocks, loop controls, a {% generation %} block that just renders its
body, tojson = json.dumps(ensure_ascii=False), raise_exception and
strftime_now as globals), and a helper that runs our C renderer
(the tool build/<mode>/tools/dump_chat_render) on the same template and context.
The mode is release unless HL_CHAT_MODE says otherwise: HL_CHAT_MODE=asan runs
every comparison under ASan + UBSan (after `make MODE=asan tests`)."""
import json
import os
import pathlib
import subprocess
import tempfile
from datetime import datetime

import jinja2
import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment

ROOT = pathlib.Path(__file__).resolve().parent.parent.parent
TEMPLATES = ROOT / "tests" / "data" / "templates"


class GenerationBlock(jinja2.ext.Extension):
    """{% generation %}...{% endgeneration %}: renders the body unchanged (the
    real extension also records which characters the assistant produced)."""
    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return jinja2.nodes.CallBlock(self.call_method("_render", []), [], [], body).set_lineno(lineno)

    def _render(self, caller):
        return caller()


def make_env():
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def strftime_now(fmt):
        return datetime.now().strftime(fmt)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[GenerationBlock, jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


ENV = make_env()


def render_ref(src, ctx):
    """(ok, text): what jinja2 renders, or (False, error message)."""
    try:
        return True, ENV.from_string(src).render(**ctx)
    except Exception as e:  # any jinja2 or Python error is a render failure
        return False, f"{type(e).__name__}: {e}"


def renderer():
    mode = os.environ.get("HL_CHAT_MODE", "release")
    return ROOT / "build" / mode / "tools" / "dump_chat_render"


def render_ours(src, ctx):
    """(ok, text) from our C renderer."""
    with tempfile.TemporaryDirectory() as d:
        tp, cp = pathlib.Path(d) / "t.jinja", pathlib.Path(d) / "c.json"
        tp.write_bytes(src.encode("utf-8"))
        cp.write_text(json.dumps(ctx, ensure_ascii=False), encoding="utf-8")
        env = dict(os.environ, HL_CHAT_TEMPLATE=str(tp), HL_CHAT_CONTEXT=str(cp))
        r = subprocess.run([str(renderer())], env=env, capture_output=True, timeout=60)
    out = r.stdout.decode("utf-8", errors="replace")
    if r.returncode == 0:
        return True, out
    assert out.startswith("ERROR: "), f"renderer crashed (rc {r.returncode}): {out[:500]} {r.stderr[-2000:]!r}"
    return False, out[len("ERROR: "):]
