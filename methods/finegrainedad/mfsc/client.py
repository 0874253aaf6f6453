"""Generate MFSC captions from one normal image with an OpenAI-compatible chat-completions endpoint.

The request (``POST {endpoint}/chat/completions``, JSON mode) carries an instruction, the answer schema and
the image as a base64 PNG data URL. The answer must be a JSON object that follows the schema; anything else
(an HTTP error, a reply that is not JSON, a schema violation) raises :class:`CaptionsError` and nothing is
written. Endpoint, key and model default to the environment variables below.
"""
from __future__ import annotations

import base64
import io
import json
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import CaptionsError

ENDPOINT_ENV = "ZSADBENCH_CAPTIONS_ENDPOINT"
API_KEY_ENV = "ZSADBENCH_CAPTIONS_API_KEY"
MODEL_ENV = "ZSADBENCH_CAPTIONS_MODEL"
DEFAULT_MODEL = "gpt-4o"
#: longest image side sent to the model; larger images are shrunk (the captions describe the whole image)
MAX_SIDE = 1024

INSTRUCTION = (
    "You describe normal (defect-free) images for an industrial and medical anomaly detection benchmark. "
    "Look at the image of the category '{category}' from the dataset '{dataset}' and describe what a normal "
    "sample looks like, from coarse to fine: the image view (foreground and background), the foreground view "
    "(each visual component as an entity with its number and location, and one sentence on how the entities "
    "relate), the component view (for every entity, in the same order: direction, colour, texture, shape and a "
    "one-sentence caption) and a one- or two-sentence summary. Attribute values must come from the vocabularies "
    "of the schema; for mixed or uncertain values join two to four base values with 'and', 'or' or 'with' as "
    '{{"base": [...], "joiner": "..."}}. Describe only what is normal; never mention defects. '
    "Answer with one JSON object that follows this JSON Schema, and nothing else:\n{schema}"
)


@dataclass(frozen=True)
class Endpoint:
    """Where to send the request: base URL (``.../v1``), API key (may be empty) and model name."""

    url: str
    api_key: str
    model: str

    @classmethod
    def resolve(cls, url: str | None = None, api_key: str | None = None, model: str | None = None) -> Endpoint:
        """Arguments first, then ``ZSADBENCH_CAPTIONS_*``, then ``OPENAI_BASE_URL``/``OPENAI_API_KEY``."""
        url = url or os.environ.get(ENDPOINT_ENV) or os.environ.get("OPENAI_BASE_URL")
        if not url:
            raise CaptionsError(f"no chat-completions endpoint given; pass --endpoint URL (e.g. "
                                f"https://api.openai.com/v1) or set {ENDPOINT_ENV}")
        key = api_key if api_key is not None else os.environ.get(API_KEY_ENV) or os.environ.get("OPENAI_API_KEY", "")
        return cls(url.rstrip("/"), key, model or os.environ.get(MODEL_ENV) or DEFAULT_MODEL)

    @property
    def completions_url(self) -> str:
        return f"{self.url}/chat/completions"


def image_data_url(path: Path) -> str:
    """The image as a ``data:image/png;base64,...`` URL (RGB, longest side at most :data:`MAX_SIDE`)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img = img.convert("RGB")
            img.thumbnail((MAX_SIDE, MAX_SIDE))
            buffer = io.BytesIO()
            img.save(buffer, format="PNG")
    except (OSError, UnidentifiedImageError) as exc:
        raise CaptionsError(f"{path}: cannot be read as an image ({exc}); pass a normal image of the category") from None
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def request_body(dataset: str, category: str, image: Path, model: str, answer_schema: dict[str, Any]) -> dict[str, Any]:
    """The chat-completions request for one image."""
    instruction = INSTRUCTION.format(dataset=dataset, category=category,
                                     schema=json.dumps(answer_schema, separators=(",", ":")))
    return {
        "model": model,
        "temperature": 0,
        "response_format": {"type": "json_object"},
        "messages": [
            {"role": "system", "content": instruction},
            {"role": "user", "content": [
                {"type": "text", "text": f"Normal image of {category} ({dataset}). Answer with the JSON object."},
                {"type": "image_url", "image_url": {"url": image_data_url(image)}},
            ]},
        ],
    }


def post(endpoint: Endpoint, body: dict[str, Any], timeout: float) -> dict[str, Any]:
    """POST ``body`` as JSON and return the parsed reply; any failure raises a one-line :class:`CaptionsError`."""
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if endpoint.api_key:
        headers["Authorization"] = f"Bearer {endpoint.api_key}"
    request = urllib.request.Request(endpoint.completions_url, data=json.dumps(body).encode("utf-8"),
                                     headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            raw = response.read()
    except urllib.error.HTTPError as exc:
        detail = _first_line(exc.read().decode("utf-8", "replace"))
        raise CaptionsError(f"{endpoint.completions_url} answered HTTP {exc.code} {exc.reason}: {detail}; "
                            "check the endpoint, key and model") from None
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise CaptionsError(f"cannot reach {endpoint.completions_url} ({reason}); check --endpoint or "
                            f"{ENDPOINT_ENV}") from None
    try:
        reply = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise CaptionsError(f"{endpoint.completions_url} sent a reply that is not JSON ({_first_line(raw)}); "
                            "is it an OpenAI-compatible endpoint?") from None
    return reply


def answer_of(reply: Any, where: str) -> Any:
    """The JSON object in the reply's first choice."""
    try:
        content = reply["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        raise CaptionsError(f"{where}: the reply has no choices[0].message.content ({_first_line(reply)}); "
                            "is it an OpenAI-compatible chat-completions endpoint?") from None
    if not isinstance(content, str):
        raise CaptionsError(f"{where}: choices[0].message.content is {type(content).__name__}, expected text")
    try:
        return json.loads(content)
    except json.JSONDecodeError:
        raise CaptionsError(f"{where}: the answer is not JSON ({_first_line(content)}); use a model that "
                            "supports JSON mode, or try again") from None


def _first_line(value: Any, limit: int = 120) -> str:
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value if isinstance(value, str) \
        else json.dumps(value, default=str)
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 3] + "..."
