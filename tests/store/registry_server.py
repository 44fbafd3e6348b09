"""A small Docker-v2/Ollama registry for tests, on 127.0.0.1 only.

It serves real blobs (the shared stories260K GGUF files) under
/v2/<namespace>/<model>/manifests/<tag> and /v2/<namespace>/<model>/blobs/<digest>,
with behaviours chosen by the model name:
  stories   plain
  redirect  every blob answers 307 to /cdn/<digest> (as Ollama's registry does)
  flaky     the model blob's first response is cut after half its bytes; the
            client must resume with a Range request
  corrupt   the model blob's bytes differ from its digest (one byte flipped)
  slow      blobs trickle out (for kill -9 tests)
  auth*     bearer-token auth, as Docker/Ollama registries do it: manifests and
            blobs without a valid "Authorization: Bearer" answer 401 with a
            WWW-Authenticate challenge (parameters out of the usual order, a
            comma inside the quoted service); /token?service=..&scope=.. issues
            tokens bound to that scope; blobs redirect to /cdn/ on a second
            port (another origin) that refuses any request carrying
            Authorization, so a client leaking its token there fails.
            "authaccess" answers {"access_token": ..}; "authbad"'s token
            endpoint answers 500; "authdeny" issues tokens the registry then
            refuses; "authmalformed" sends an unterminated quoted realm.
Also /files/<name>.gguf for plain-URL pulls. Requests are logged as
(method, path, range header, authorization header)."""
import hashlib
import http.server
import json
import pathlib
import secrets
import sys
import threading
import time
import urllib.parse


def sha(b):
    return "sha256:" + hashlib.sha256(b).hexdigest()


class Registry:
    def __init__(self, shared):
        self.blobs = {}
        self.manifests = {}
        self.files = {}
        models = pathlib.Path(shared) / "models"
        q4 = (models / "stories260K-Q4_0.gguf").read_bytes()
        q8 = (models / "stories260K-Q8_0.gguf").read_bytes()
        self.files["stories260K-Q8_0.gguf"] = q8
        for name, gguf in [("stories", q4), ("redirect", q4), ("flaky", q8), ("corrupt", q8), ("slow", q8),
                           ("auth", q4), ("authaccess", q4), ("authbad", q4), ("authdeny", q4), ("authmalformed", q4)]:
            self.add_model("library", name, "latest", gguf)
        self.add_model("library", "stories", "q8", q8)

    def add_model(self, ns, name, tag, gguf):
        layers = []
        for mt, data in [
            ("application/vnd.ollama.image.model", gguf),
            ("application/vnd.ollama.image.template", b"{{ .System }}\n{{ .Prompt }}"),
            ("application/vnd.ollama.image.params", json.dumps({"stop": ["</s>"], "temperature": 0.5}).encode()),
            ("application/vnd.ollama.image.license", b"MIT license, test model " + name.encode()),
        ]:
            d = sha(data)
            self.blobs[d] = data
            layers.append({"mediaType": mt, "digest": d, "size": len(data)})
        config = json.dumps({"model_format": "gguf", "model_family": "llama", "model_families": ["llama"],
                             "model_type": "260K", "file_type": "Q4_0", "architecture": "amd64", "os": "linux",
                             "rootfs": {"type": "layers", "diff_ids": [l["digest"] for l in layers]}}).encode()
        self.blobs[sha(config)] = config
        man = {"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
               "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "digest": sha(config),
                          "size": len(config)},
               "layers": layers}
        self.manifests[(ns, name, tag)] = json.dumps(man).encode()


AUTH_SERVICE = "test registry, v2"  # the comma must survive the challenge's quoting


def make_handler(reg, log, state):
    class H(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def send_bytes(self, data, status=200, ctype="application/octet-stream", extra=None):
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            for k, v in (extra or {}).items():
                self.send_header(k, v)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        def serve_blob(self, data, model):
            start = 0
            rng = self.headers.get("Range")
            if rng and rng.startswith("bytes="):
                start = int(rng[6:].split("-")[0])
                if start >= len(data):
                    self.send_bytes(b"", 416)
                    return
            body = data[start:]
            status = 206 if start else 200
            extra = {"Content-Range": f"bytes {start}-{len(data) - 1}/{len(data)}"} if start else {}
            key = (model, len(data))
            if model == "flaky" and len(data) > 100000 and key not in state["cut"]:
                state["cut"].add(key)
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                for k, v in extra.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(2)
                return
            if model == "slow":
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                for k, v in extra.items():
                    self.send_header(k, v)
                self.end_headers()
                for i in range(0, len(body), 16384):
                    self.wfile.write(body[i:i + 16384])
                    self.wfile.flush()
                    time.sleep(0.01)
                return
            self.send_bytes(body, status, extra=extra)

        def challenge(self, model):
            port = self.server.server_address[1]
            realm = f'"http://127.0.0.1:{port}/token"'
            if model == "authmalformed":
                realm = realm[:-1]  # unterminated quoted string
            scope = f"repository:library/{model}:pull"
            body = json.dumps({"errors": [{"code": "UNAUTHORIZED"}]}).encode()
            self.send_bytes(body, 401, "application/json",
                            {"WWW-Authenticate": f'Bearer scope="{scope}", service="{AUTH_SERVICE}",realm={realm}'})

        def authorized(self, model):
            h = self.headers.get("Authorization", "")
            return model != "authdeny" and h.startswith("Bearer ") and state["tokens"].get(h[7:]) == model

        def token(self):
            q = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query, strict_parsing=True)
            scope = q.get("scope", [""])[0]
            if q.get("service") != [AUTH_SERVICE] or not scope.startswith("repository:library/") or \
                    not scope.endswith(":pull"):
                return self.send_bytes(b'{"errors":[{"code":"DENIED"}]}', 403, "application/json")
            model = scope[len("repository:library/"):-len(":pull")]
            if model == "authbad":
                return self.send_bytes(b"token service down", 500, "text/plain")
            tok = secrets.token_urlsafe(24)
            state["tokens"][tok] = model
            key = "access_token" if model == "authaccess" else "token"
            self.send_bytes(json.dumps({key: tok, "expires_in": 300}).encode(), ctype="application/json")

        def do_GET(self):
            log.append((self.command, self.path, self.headers.get("Range"), self.headers.get("Authorization")))
            on_cdn = self.server is state.get("cdn")
            if on_cdn and (self.headers.get("Authorization") or not self.path.startswith("/cdn/")):
                return self.send_bytes(b"the CDN takes no Authorization (a leaked registry token)", 400, "text/plain")
            if self.path.startswith("/token?"):
                return self.token()
            parts = self.path.split("?")[0].strip("/").split("/")
            if parts[0] == "files" and len(parts) == 2 and parts[1] in reg.files:
                return self.serve_blob(reg.files[parts[1]], "file")
            if parts[0] == "cdn" and len(parts) == 3:
                model, d = parts[1], parts[2]
                if d in reg.blobs:
                    return self.serve_blob(reg.blobs[d], model)
            if parts[0] == "v2" and len(parts) == 5:
                _, ns, model, kind, ref = parts
                if model.startswith("auth") and not self.authorized(model):
                    return self.challenge(model)
                if model.startswith("auth") and kind == "blobs" and ref in reg.blobs:
                    cdn = state["cdn"].server_address[1]
                    self.send_response(307)
                    self.send_header("Location", f"http://127.0.0.1:{cdn}/cdn/{model}/{ref}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if kind == "manifests" and (ns, model, ref) in reg.manifests:
                    return self.send_bytes(reg.manifests[(ns, model, ref)], ctype="application/vnd.docker.distribution.manifest.v2+json")
                if kind == "blobs" and ref in reg.blobs:
                    data = reg.blobs[ref]
                    if model == "redirect":
                        self.send_response(307)
                        self.send_header("Location", f"/cdn/{model}/{ref}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    if model == "corrupt" and data[:4] == b"GGUF":
                        data = data[:-10] + bytes([data[-10] ^ 0xFF]) + data[-9:]
                    return self.serve_blob(data, model)
            self.send_bytes(json.dumps({"errors": [{"code": "NOT_FOUND"}]}).encode(), 404, "application/json")

        do_HEAD = do_GET

    return H


class Server:
    def __init__(self, shared):
        self.reg = Registry(shared)
        self.log = []
        self.state = {"cut": set(), "tokens": {}}
        handler = make_handler(self.reg, self.log, self.state)
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        # the CDN blob redirects of auth* models go to: another port is another origin
        self.cdn = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.cdn.daemon_threads = True
        self.state["cdn"] = self.cdn
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.threads = [threading.Thread(target=h.serve_forever, daemon=True) for h in (self.httpd, self.cdn)]
        self.thread = self.threads[0]

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *a):
        for h in (self.httpd, self.cdn):
            h.shutdown()
            h.server_close()


if __name__ == "__main__":
    shared = sys.argv[1] if len(sys.argv) > 1 else str(pathlib.Path(__file__).resolve().parents[3] / "shared")
    with Server(shared) as s:
        print(s.url, flush=True)
        s.thread.join()
