"""The JSON Schema compiler and the matcher against independent references:
hypothesis-jsonschema generates instances of each schema (they must all be
accepted, written compactly and indented), mutations of them that the
`jsonschema` validator rejects must be rejected too, and random walks over
real vocabularies (SmolLM2's and Qwen2.5-Coder's byte-level BPE, Gemma 3's
SentencePiece) that draw only tokens the mask allows must end in texts the
validator accepts. Runs build/release/tools/dump_grammar (make tests)."""
import copy
import json
import subprocess

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis_jsonschema import from_schema

from hltest import BUILD, model_path

TOOL = BUILD / "release" / "tools" / "dump_grammar"

ADDRESS = {"type": "object", "properties": {
    "street": {"type": "string", "minLength": 1, "maxLength": 12},
    "zip": {"type": "string", "pattern": "^[0-9]{5}(-[0-9]{4})?$"},
    "country": {"enum": ["US", "FR", "JP"]}},
    "required": ["street", "zip"], "additionalProperties": False}

SCHEMAS = {
    "nested": {"type": "object", "properties": {
        "name": {"type": "string", "maxLength": 10},
        "age": {"type": "integer", "minimum": 0, "maximum": 130},
        "address": ADDRESS,
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 5}, "maxItems": 4}},
        "required": ["name", "address"], "additionalProperties": False},
    "arrays": {"type": "object", "properties": {
        "pair": {"type": "array", "items": {"type": "boolean"}, "minItems": 2, "maxItems": 2},
        "scores": {"type": "array", "items": {"type": "number", "minimum": -5, "maximum": 5},
                   "minItems": 1, "maxItems": 3}},
        "required": ["pair", "scores"], "additionalProperties": False},
    "enums": {"type": "object", "properties": {
        "color": {"enum": ["red", "green", "blue"]},
        "size": {"type": "integer", "enum": [1, 2, 3]},
        "kind": {"const": "fixed"},
        "maybe": {"type": ["string", "null"], "maxLength": 3}},
        "required": ["color", "kind"], "additionalProperties": False},
    "refs": {"$defs": {"point": {"type": "object", "properties": {"x": {"type": "integer", "minimum": -99, "maximum": 99},
                                                                  "y": {"type": "integer", "minimum": -99, "maximum": 99}},
                                 "required": ["x", "y"], "additionalProperties": False}},
             "type": "object", "properties": {"a": {"$ref": "#/$defs/point"}, "b": {"$ref": "#/$defs/point"}},
             "required": ["a"], "additionalProperties": False},
    "anyof": {"type": "object", "properties": {
        "value": {"anyOf": [{"type": "integer", "minimum": 10, "maximum": 20}, {"type": "string", "pattern": "^id-[a-f0-9]{3}$"},
                            {"type": "null"}]}},
        "required": ["value"], "additionalProperties": False},
    "patterns": {"type": "object", "properties": {
        "code": {"type": "string", "pattern": "^[A-Z]{2,3}-[0-9]{2}$"},
        "word": {"type": "string", "pattern": "^(cat|dog)s?$"},
        "when": {"type": "string", "format": "date"}},
        "required": ["code", "word", "when"], "additionalProperties": False},
    # hypothesis-jsonschema writes no valid uuids: checked by the walks only
    "formats": {"type": "object", "properties": {
        "id": {"type": "string", "format": "uuid"},
        "at": {"type": "string", "format": "date-time"},
        "mail": {"type": "string", "format": "email"}},
        "required": ["id", "at", "mail"], "additionalProperties": False},
    "recursive": {"$defs": {"node": {"type": "object", "properties": {
        "v": {"type": "integer", "minimum": 0, "maximum": 9},
        "kids": {"type": "array", "items": {"$ref": "#/$defs/node"}, "maxItems": 2}},
        "required": ["v"], "additionalProperties": False}},
        "$ref": "#/$defs/node"},
    "allof": {"allOf": [{"type": "object", "properties": {"id": {"type": "integer", "minimum": 1, "maximum": 999}}, "required": ["id"]},
                        {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}]},
    "numbers": {"type": "object", "properties": {
        "ratio": {"type": "number", "minimum": 0, "maximum": 1},
        "temp": {"type": "number", "minimum": -40, "maximum": 60},
        "count": {"type": "integer", "exclusiveMinimum": 5, "exclusiveMaximum": 1000}},
        "required": ["ratio", "temp", "count"], "additionalProperties": False},
}

FMT = jsonschema.FormatChecker()


def validator(schema):
    return jsonschema.Draft202012Validator(schema, format_checker=FMT)


def tool(*args, stdin=None):
    if not TOOL.exists():
        pytest.fail(f"{TOOL} not built: run make tests", pytrace=False)
    r = subprocess.run([str(TOOL), *args], input=stdin, capture_output=True, text=True, timeout=300)
    return r


def match(kind, path, texts):
    hexed = "".join(t.encode("utf-8").hex() + "\n" for t in texts)
    r = tool(kind, str(path), "match", stdin=hexed)
    assert r.returncode == 0, r.stderr
    return r.stdout.split()


def deref(root, s):
    while isinstance(s, dict) and "$ref" in s:
        node = root
        for part in s["$ref"].lstrip("#/").split("/"):
            if part:
                node = node[part]
        s = node
    return s


def canon(root, s, x, keep=False):
    """x with object keys in the schema's property order (the grammar's
    canonical shape); undeclared properties are dropped unless keep."""
    s = deref(root, s)
    if not isinstance(s, dict):
        return x
    for key in ("anyOf", "oneOf"):
        if key in s:
            for branch in s[key]:
                b = deref(root, branch)
                if validator({**root, **b} if isinstance(b, dict) else b).is_valid(x):
                    return canon(root, b, x, keep)
            return x
    if "allOf" in s:
        props = {}
        for part in s["allOf"]:
            props.update(deref(root, part).get("properties", {}))
        s = {"type": "object", "properties": props}
    if isinstance(x, dict):
        props = s.get("properties", {})
        # the grammar generates only declared properties: drop the others
        out = {k: canon(root, props[k], x[k], keep) for k in props if k in x}
        if keep:
            out.update({k: v for k, v in x.items() if k not in props})
        return out
    if isinstance(x, list):
        pre = s.get("prefixItems", [])
        items = s.get("items", True)
        return [canon(root, pre[i] if i < len(pre) else items, v, keep) for i, v in enumerate(x)]
    return x


def plain(x):
    """Whether json.dumps writes x the way the grammar generates it (no lone
    surrogates, integers within 16 digits)."""
    if isinstance(x, str):  # (the date format never generates Feb 29)
        return not any(0xD800 <= ord(ch) <= 0xDFFF for ch in x) and "-02-29" not in x
    if isinstance(x, bool) or x is None:
        return True
    if isinstance(x, int):
        return abs(x) < 10 ** 16
    if isinstance(x, float):
        return x == x and "e" not in repr(x) and "inf" not in repr(x)
    if isinstance(x, list):
        return all(plain(v) for v in x)
    return all(plain(k) and plain(v) for k, v in x.items())


def unroll(root, s, depth=3):
    """s with its $refs inlined depth levels deep (then nothing), for
    hypothesis-jsonschema, which cannot generate from recursive schemas."""
    if isinstance(s, dict):
        if "$ref" in s:
            return unroll(root, deref(root, s), depth - 1) if depth > 0 else {"not": {}}
        return {k: unroll(root, v, depth) for k, v in s.items() if k != "$defs"}
    if isinstance(s, list):
        return [unroll(root, v, depth) for v in s]
    return s


def instances(schema, n=40):
    out = []
    v = validator(schema)

    @settings(max_examples=n, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(from_schema(unroll(schema, schema)))
    def collect(x):
        if v.is_valid(x):  # hypothesis-jsonschema does not know every format
            out.append(x)

    collect()
    return [x for x in out if plain(x)]


def mutations(x):
    """Edits of a valid instance, some of which break it."""
    if isinstance(x, dict):
        for k in list(x):
            y = dict(x)
            del y[k]
            yield y
            for bad in (12345, "zzzz-not-valid", None, [1], {"q": 1}, True, 99.5):
                y = dict(x)
                y[k] = bad
                yield y
            for m in mutations(x[k]):
                y = dict(x)
                y[k] = m
                yield y
        y = dict(x)
        y["extra_key"] = 1
        yield y
    elif isinstance(x, list):
        yield x + [x[0] if x else 0]
        yield x[:-1]
        for i, v in enumerate(x[:2]):
            for m in mutations(v):
                y = list(x)
                y[i] = m
                yield y
    elif isinstance(x, str):
        yield x + "Z"
        yield x[:-1]
        yield "x" + x
    elif isinstance(x, (int, float)) and not isinstance(x, bool):
        yield x + 1
        yield -x - 1
        yield x * 1000 + 0.5


@pytest.mark.parametrize("name", sorted(set(SCHEMAS) - {"formats"}))
def test_schema_instances_and_mutations(name, tmp_path):
    schema = SCHEMAS[name]
    sp = tmp_path / "schema.json"
    sp.write_text(json.dumps(schema))
    r = tool("schema", str(sp), "print")
    assert r.returncode == 0, r.stderr
    v = validator(schema)
    good = instances(schema)
    assert len(good) >= 5, "hypothesis-jsonschema gave too few instances"
    texts = []
    for x in good:
        c = canon(schema, schema, x)
        assert v.is_valid(c), (x, c)
        texts.append(json.dumps(c, ensure_ascii=False, separators=(",", ":")))
        texts.append(json.dumps(c, ensure_ascii=False, indent=1))
    got = match("schema", sp, texts)
    missed = [t for t, g in zip(texts, got) if g != "1"]
    assert not missed, f"valid instances refused ({len(missed)} of {len(texts)}), e.g. {missed[:3]}"
    bad = []
    for x in good[:15]:
        for m in mutations(copy.deepcopy(x)):
            m = canon(schema, schema, m, keep=True)
            if plain(m) and not v.is_valid(m):
                bad.append(json.dumps(m, ensure_ascii=False, separators=(",", ":")))
    bad = sorted(set(bad))
    assert bad, "no invalid mutation was produced"
    got = match("schema", sp, bad)
    wrong = [t for t, g in zip(bad, got) if g == "1"]
    assert not wrong, f"invalid instances accepted: {wrong[:5]}"


WALKS = [(m, n) for m in ["smollm2-135m-instruct-q4_1.gguf"]
         for n in ["nested", "anyof", "recursive", "patterns", "numbers", "formats", "arrays"]] + \
        [(m, n) for m in ["qwen2.5-coder-1.5b-instruct-q4_k_m.gguf", "gemma-3-270m-q4_k_m.gguf"]
         for n in ["nested", "recursive", "anyof"]]


@pytest.mark.parametrize("model,name", WALKS)
def test_mask_random_walks_validate(model, name, tmp_path):
    schema = SCHEMAS[name]
    sp = tmp_path / "schema.json"
    sp.write_text(json.dumps(schema))
    r = tool("schema", str(sp), "walk", str(model_path(model)), "12", "7")
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr
    v = validator(schema)
    done = 0
    for line in r.stdout.splitlines():
        kind, _, hexed = line.partition(" ")
        assert kind in ("done", "open"), line
        if kind != "done":
            continue
        text = bytes.fromhex(hexed).decode("utf-8")
        x = json.loads(text)
        errors = [e.message for e in v.iter_errors(x)]
        assert not errors, f"walk produced an invalid instance {text!r}: {errors}"
        done += 1
    assert done >= 3, f"only {done} of 12 walks finished:\n{r.stdout}"


# Characters the mask's byte classes treat unevenly: classes that cover part
# of a UTF-8 lead byte's code points (Cyrillic, CJK, Greek, Latin-1, emoji),
# a negated class that splits printable ASCII, and bounded repetitions.
UNICODE_GBNF = r"""root ::= "[" ws item (ws "," ws item)* ws "]"
ws ::= [ \n]{0,3}
item ::= "\"" [а-яА-Я ]{0,12} "\"" | "<" [一-龥]+ ">" | "(" [α-ω0-9]{1,5} ")" | "'" [^'\n]* "'" | "{" [\u00e0-\u00ff]{0,4} [😀-🙏]? "}"
"""

EXACT = [(m, n) for m in ["qwen2.5-coder-1.5b-instruct-q4_k_m.gguf", "gemma-3-270m-q4_k_m.gguf"]
         for n in ["nested", "formats", "unicode", "object"]]


@pytest.mark.parametrize("model,name", EXACT)
def test_mask_equals_reference(model, name, tmp_path):
    """Every mask the processor gives along random walks (memoized walk, byte
    classes, mask cache) equals the reference: each token's bytes advanced
    through the plain recognizer one by one (hl_grammar_allowed_after), on
    Qwen2.5-Coder's 151k byte-level BPE vocabulary and Gemma 3's 262k
    SentencePiece one."""
    if name == "object":
        args = ["object"]
    elif name == "unicode":
        gp = tmp_path / "g.gbnf"
        gp.write_text(UNICODE_GBNF, encoding="utf-8")
        args = ["gbnf", str(gp)]
    else:
        sp = tmp_path / "schema.json"
        sp.write_text(json.dumps(SCHEMAS[name]))
        args = ["schema", str(sp)]
    r = tool(*args, "check", str(model_path(model)), "4", "11", "9")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr
    checked = int(r.stdout.split("checked ")[1].split()[0])
    assert checked >= 12, r.stdout


def test_json_any_walks_parse(tmp_path):
    r = tool("object", "walk", str(model_path("smollm2-135m-instruct-q4_1.gguf")), "10", "3")
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr
    for line in r.stdout.splitlines():
        kind, _, hexed = line.partition(" ")
        if kind == "done":
            assert isinstance(json.loads(bytes.fromhex(hexed).decode("utf-8")), dict)


@pytest.mark.parametrize("schema,word", [
    ({"type": "array", "uniqueItems": True}, "uniqueItems"),
    ({"type": "object", "patternProperties": {"a": {}}}, "patternProperties"),
    ({"type": "string", "format": "hostname"}, "hostname"),
    ({"type": "string", "pattern": "(?=a)"}, "(?"),
    ({"type": "number", "multipleOf": 2}, "multipleOf"),
    ({"$ref": "http://example.com/s.json"}, "outside"),
    ({"$ref": "#/$defs/missing"}, "does not resolve"),
])
def test_unsupported_fails_closed(schema, word, tmp_path):
    sp = tmp_path / "schema.json"
    sp.write_text(json.dumps(schema))
    r = tool("schema", str(sp), "print")
    assert r.returncode == 1 and word in r.stderr, r.stderr
