"""``zsadbench captions generate`` against a real HTTP server on 127.0.0.1 that answers like an OpenAI endpoint."""
from __future__ import annotations

import base64
import io
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from zsadbench.cli.main import main
from zsadbench.methods.finegrainedad.mfsc import (
    API_KEY_ENV,
    ENDPOINT_ENV,
    MODEL_ENV,
    caption_path,
    load_captions,
    shipped_dir,
)
from zsadbench.methods.finegrainedad.mfsc.validate import META_FIELDS, answer_schema


class ChatServer:
    """A chat-completions endpoint on a free local port; ``reply`` decides each answer and requests are kept."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.reply = lambda body: (200, {})
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's naming)
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                body = json.loads(raw)
                server.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                status, payload = server.reply(body)
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def answer_with(self, content: str) -> None:
        self.reply = lambda body: (200, {
            "id": "chatcmpl-1", "object": "chat.completion", "model": body["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        })

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


@pytest.fixture
def server():
    chat = ChatServer()
    yield chat
    chat.close()


@pytest.fixture(scope="module")
def image(tmp_path_factory) -> Path:
    """Some photo to send, for the tests that do not look at it (the round trip sends a real hazelnut)."""
    path = tmp_path_factory.mktemp("photo") / "000.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (256, 256, 3), dtype=np.uint8)).save(path)
    return path


def _answer() -> dict:
    """A valid answer: the views and summary of a caption file, without the fields the caller adds."""
    doc = json.loads(caption_path(shipped_dir(), "mvtec", "hazelnut").read_text())
    return {k: v for k, v in doc.items() if k not in META_FIELDS}


def _generate(image: Path, out: Path, *extra: str) -> int:
    return main(["captions", "generate", "--dataset", "mvtec", "--category", "hazelnut", "--image", str(image),
                 "--out", str(out), *extra])


def _files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


def test_round_trip_through_a_local_endpoint(server, tmp_path, real_mvtec):
    server.answer_with(json.dumps(_answer()))
    out = tmp_path / "captions"
    image = real_mvtec / "hazelnut" / "train" / "good" / "000.png"
    assert _generate(image, out, "--endpoint", server.url, "--api-key", "sk-local", "--model", "toy-vlm") == 0

    assert _files(out) == [out / "mvtec" / "hazelnut.json"]
    captions = load_captions("mvtec", "hazelnut", out)
    assert {k: v for k, v in captions.to_dict().items() if k not in META_FIELDS} == _answer()
    assert (captions.source.kind, captions.source.model, captions.source.image) == ("generated", "toy-vlm", "000.png")

    (request,) = server.requests
    assert request["path"] == "/v1/chat/completions"
    assert request["headers"]["Authorization"] == "Bearer sk-local"
    body = request["body"]
    assert body["model"] == "toy-vlm" and body["response_format"] == {"type": "json_object"}
    system, user = body["messages"]
    sent_schema = json.loads(system["content"].split("nothing else:\n", 1)[1])
    assert sent_schema == answer_schema()
    url = next(part["image_url"]["url"] for part in user["content"] if part["type"] == "image_url")
    prefix = "data:image/png;base64,"
    assert url.startswith(prefix)
    sent = np.asarray(Image.open(io.BytesIO(base64.b64decode(url[len(prefix):]))))
    assert np.array_equal(sent, np.asarray(Image.open(image).convert("RGB")))


def test_endpoint_key_and_model_from_the_environment(server, image, tmp_path, monkeypatch):
    server.answer_with(json.dumps(_answer()))
    monkeypatch.setenv(ENDPOINT_ENV, server.url + "/")
    monkeypatch.setenv(API_KEY_ENV, "sk-env")
    monkeypatch.setenv(MODEL_ENV, "env-model")
    assert _generate(image, tmp_path) == 0
    (request,) = server.requests
    assert request["path"] == "/v1/chat/completions"
    assert request["headers"]["Authorization"] == "Bearer sk-env"
    assert request["body"]["model"] == "env-model"
    assert load_captions("mvtec", "hazelnut", tmp_path).source.model == "env-model"


def _bad_colour() -> str:
    answer = _answer()
    answer["component_view"]["components"][0]["colour"] = "hazel-brown"
    return json.dumps(answer)


MALFORMED = [
    ("content", "Sure! Here are the captions: {...}", "the answer is not JSON"),
    ("content", _bad_colour(), "component_view.components[0].colour: 'hazel-brown' is not a colour base value"),
    ("content", json.dumps({"summary": "A hazelnut on black."}), "missing field 'image_view'"),
    ("content", json.dumps(["a", "list"]), "expected a JSON object"),
    ("status", (500, {"error": {"message": "model overloaded"}}), "answered HTTP 500"),
    ("status", (401, b"invalid api key"), "answered HTTP 401"),
    ("status", (200, b"<html>not an api</html>"), "sent a reply that is not JSON"),
    ("status", (200, {"choices": []}), "the reply has no choices[0].message.content"),
]


@pytest.mark.parametrize("kind,reply,words", MALFORMED)
def test_a_malformed_answer_is_rejected_and_nothing_is_stored(server, image, tmp_path, capsys, kind, reply, words):
    if kind == "content":
        server.answer_with(reply)
    else:
        server.reply = lambda body, reply=reply: reply
    out = tmp_path / "captions"
    assert _generate(image, out, "--endpoint", server.url) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("CaptionsError: ") and words in err, err
    assert len(err.splitlines()) == 1
    assert _files(out) == []


def test_an_unreachable_endpoint_is_one_line(image, tmp_path, capsys):
    closed = ChatServer()
    url = closed.url
    closed.close()
    assert _generate(image, tmp_path, "--endpoint", url, "--timeout", "5") == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("CaptionsError: cannot reach http://127.0.0.1:") and len(err.splitlines()) == 1
    assert _files(tmp_path) == []


def test_an_existing_file_needs_force(server, image, tmp_path, capsys):
    server.answer_with(json.dumps(_answer()))
    target = caption_path(tmp_path, "mvtec", "hazelnut")
    target.parent.mkdir(parents=True)
    target.write_text("old")
    assert _generate(image, tmp_path, "--endpoint", server.url) == 1
    assert "pass --force" in capsys.readouterr().err
    assert target.read_text() == "old" and server.requests == []
    assert _generate(image, tmp_path, "--endpoint", server.url, "--force") == 0
    assert load_captions("mvtec", "hazelnut", tmp_path).source.kind == "generated"
    assert _files(tmp_path) == [target]


def test_no_endpoint_and_unreadable_image_are_one_line(image, tmp_path, capsys, monkeypatch):
    for name in (ENDPOINT_ENV, "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    assert _generate(image, tmp_path) == 1
    assert f"pass --endpoint URL (e.g. https://api.openai.com/v1) or set {ENDPOINT_ENV}" in capsys.readouterr().err
    fake = tmp_path / "fake.png"
    fake.write_text("not an image")
    code = main(["captions", "generate", "-d", "mvtec", "-c", "hazelnut", "--image", str(fake),
                 "--endpoint", "http://127.0.0.1:9/v1", "--out", str(tmp_path / "out")])
    assert code == 1
    assert f"{fake}: cannot be read as an image" in capsys.readouterr().err


def test_large_images_are_shrunk_to_1024_px(server, tmp_path):
    server.answer_with(json.dumps(_answer()))
    big = tmp_path / "big.png"
    Image.fromarray(np.full((1000, 2048, 3), 90, np.uint8)).save(big)
    code = main(["captions", "generate", "-d", "mvtec", "-c", "hazelnut", "--image", str(big),
                 "--endpoint", server.url, "--out", str(tmp_path / "out")])
    assert code == 0
    url = server.requests[0]["body"]["messages"][1]["content"][1]["image_url"]["url"]
    sent = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
    assert sent.size == (1024, 500)
