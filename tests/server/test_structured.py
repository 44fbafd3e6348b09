"""Structured outputs on both APIs with the real clients on Qwen2.5-Coder-1.5B:
the openai SDK's chat.completions.parse with a Pydantic model, the ollama
client's format=Model.model_json_schema(), a set of schemas (nested objects,
arrays, enums, $ref, anyOf, patterns, recursion) sent together so the engine
batches them, streaming, n=2, json_object / format "json", the GBNF grammar
field, and 400s that name what is wrong. Every output is validated with the
jsonschema package against its schema."""
import concurrent.futures
import json
from typing import List, Literal

import jsonschema
import ollama
import openai
import pytest
import requests
from pydantic import BaseModel, Field

from hltest import model_path


@pytest.fixture(scope="module")
def qwen():
    return str(model_path("qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"))


@pytest.fixture(scope="module")
def oai(server):
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=300)


@pytest.fixture(scope="module")
def oll(server):
    return ollama.Client(host=server.url, timeout=300)


def check(schema, text):
    x = json.loads(text)
    jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker()).validate(x)
    return x


class City(BaseModel):
    name: str = Field(max_length=16)
    country: Literal["France", "Japan", "Peru", "Other"]
    population_millions: int = Field(ge=0, le=50)


class Trip(BaseModel):
    traveller: str = Field(max_length=12)
    stops: List[City] = Field(max_length=2)


def test_openai_parse_pydantic(oai, qwen):
    r = oai.beta.chat.completions.parse(
        model=qwen, response_format=Trip, temperature=0, max_tokens=120,
        messages=[{"role": "user", "content": "Ann visits Paris then Tokyo. Describe the trip as JSON."}])
    msg = r.choices[0].message
    assert isinstance(msg.parsed, Trip), msg.content
    check(Trip.model_json_schema(), msg.content)
    assert r.choices[0].finish_reason == "stop"


def test_ollama_format_model_schema(oll, qwen):
    r = oll.chat(model=qwen, format=City.model_json_schema(), options={"temperature": 0, "num_predict": 60},
                 messages=[{"role": "user", "content": "Tell me about Lima."}])
    x = check(City.model_json_schema(), r["message"]["content"])
    assert r["done_reason"] == "stop"
    City.model_validate(x)


SCHEMAS = {
    "nested": {"type": "object", "properties": {
        "user": {"type": "object", "properties": {"id": {"type": "integer", "minimum": 1, "maximum": 999},
                                                  "nick": {"type": "string", "maxLength": 8}},
                 "required": ["id", "nick"], "additionalProperties": False}},
        "required": ["user"], "additionalProperties": False},
    "arrays": {"type": "object", "properties": {"primes": {"type": "array", "items": {"type": "integer", "minimum": 2, "maximum": 30},
                                                           "minItems": 3, "maxItems": 4}},
               "required": ["primes"], "additionalProperties": False},
    "enums": {"type": "object", "properties": {"answer": {"enum": ["yes", "no", "maybe"]},
                                               "confidence": {"type": "integer", "minimum": 0, "maximum": 10}},
              "required": ["answer", "confidence"], "additionalProperties": False},
    "ref": {"$defs": {"pt": {"type": "object", "properties": {"x": {"type": "integer", "minimum": -9, "maximum": 9},
                                                              "y": {"type": "integer", "minimum": -9, "maximum": 9}},
                             "required": ["x", "y"], "additionalProperties": False}},
            "type": "object", "properties": {"from": {"$ref": "#/$defs/pt"}, "to": {"$ref": "#/$defs/pt"}},
            "required": ["from", "to"], "additionalProperties": False},
    "anyof": {"type": "object", "properties": {"v": {"anyOf": [{"type": "boolean"}, {"type": "string", "maxLength": 6}]}},
              "required": ["v"], "additionalProperties": False},
    "pattern": {"type": "object", "properties": {"sku": {"type": "string", "pattern": "^[A-Z]{3}-[0-9]{4}$"},
                                                 "day": {"type": "string", "format": "date"}},
                "required": ["sku", "day"], "additionalProperties": False},
    "recursive": {"$defs": {"t": {"type": "object", "properties": {
        "n": {"type": "integer", "minimum": 0, "maximum": 9},
        "kids": {"type": "array", "items": {"$ref": "#/$defs/t"}, "maxItems": 2}},
        "required": ["n", "kids"], "additionalProperties": False}},
        "$ref": "#/$defs/t"},
}

PROMPTS = {
    "nested": "Make up a user record.",
    "arrays": "List a few small prime numbers.",
    "enums": "Is the sky green?",
    "ref": "Give a line segment from the origin to (3, 4).",
    "anyof": "Is water wet?",
    "pattern": "Invent a product SKU and a delivery date.",
    "recursive": "Make a tiny tree of numbers, depth 2.",
}


def test_schema_set_batched(server, qwen):
    def one(name):
        r = requests.post(server.url + "/api/generate", timeout=300, json={
            "model": qwen, "prompt": PROMPTS[name] + " Answer in JSON.", "stream": False, "format": SCHEMAS[name],
            "options": {"temperature": 0.7, "seed": 5, "num_predict": 80}})
        assert r.status_code == 200, r.text
        return name, r.json()

    with concurrent.futures.ThreadPoolExecutor(len(SCHEMAS)) as ex:
        results = list(ex.map(one, SCHEMAS))
    for name, body in results:
        assert body["done_reason"] == "stop", (name, body["response"])
        check(SCHEMAS[name], body["response"])


def test_openai_stream_json_schema(oai, qwen):
    schema = SCHEMAS["enums"]
    chunks = oai.chat.completions.create(
        model=qwen, stream=True, temperature=0, max_tokens=40,
        response_format={"type": "json_schema", "json_schema": {"name": "a", "schema": schema, "strict": True}},
        messages=[{"role": "user", "content": "Is fire cold?"}])
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    check(schema, text)


def test_openai_n2_json_object_and_completions(oai, qwen):
    r = oai.chat.completions.create(
        model=qwen, n=2, temperature=1.0, seed=11, max_tokens=60, response_format={"type": "json_object"},
        messages=[{"role": "user", "content": "Give a JSON object with one key, color, and a color name."}])
    assert len(r.choices) == 2
    for c in r.choices:
        assert c.finish_reason == "stop", c.message.content
        assert isinstance(json.loads(c.message.content), dict)
    schema = SCHEMAS["anyof"]
    r = oai.completions.create(model=qwen, prompt="Q: Is ice cold?\nA (JSON):", max_tokens=30, temperature=0,
                               extra_body={"response_format": {"type": "json_schema", "json_schema": {"name": "v", "schema": schema}}})
    check(schema, r.choices[0].text)


def test_grammar_field_both_apis(server, oai, qwen):
    g = 'root ::= ("yes" | "no") "."'
    r = oai.completions.create(model=qwen, prompt="Is the earth round? Answer:", max_tokens=5, temperature=0,
                               extra_body={"grammar": g})
    assert r.choices[0].text in ("yes.", "no."), r.choices[0].text
    r = requests.post(server.url + "/api/generate", timeout=120, json={
        "model": qwen, "prompt": "Is the sun cold?", "stream": False, "grammar": g, "options": {"num_predict": 5}})
    assert r.status_code == 200 and r.json()["response"] in ("yes.", "no."), r.text


def test_ollama_format_json(oll, qwen):
    r = oll.generate(model=qwen, prompt="A short JSON object naming a cat:", format="json",
                     options={"temperature": 0, "num_predict": 60})
    assert r["done_reason"] == "stop", r["response"]
    json.loads(r["response"])


def test_bad_schema_and_grammar_are_400(server, oai, oll, qwen):
    with pytest.raises(openai.BadRequestError) as e:
        oai.chat.completions.create(model=qwen, messages=[{"role": "user", "content": "x"}], max_tokens=3,
                                    response_format={"type": "json_schema", "json_schema": {
                                        "name": "t", "schema": {"type": "array", "uniqueItems": True}}})
    assert "uniqueItems" in str(e.value)
    with pytest.raises(ollama.ResponseError) as e:
        oll.chat(model=qwen, messages=[{"role": "user", "content": "x"}], format={"$ref": "#/$defs/none"})
    assert e.value.status_code == 400 and "does not resolve" in str(e.value)
    r = requests.post(server.url + "/v1/completions", timeout=60, json={
        "model": qwen, "prompt": "x", "grammar": "root ::= \"a\"\nbad ::= (\"b\"", "max_tokens": 2})
    assert r.status_code == 400 and "grammar:2:" in r.text, r.text
    r = requests.post(server.url + "/api/chat", timeout=60, json={
        "model": qwen, "messages": [{"role": "user", "content": "x"}], "format": "yaml"})
    assert r.status_code == 400 and "format" in r.text
