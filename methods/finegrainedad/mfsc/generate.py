"""``generate_captions``: one normal image in, one validated caption file out (or an error and no file)."""
from __future__ import annotations

from pathlib import Path

from .client import Endpoint, answer_of, post, request_body
from .store import write_captions
from .types import MFSCCaptions
from .validate import answer_schema, check, validate


def generate_captions(dataset: str, category: str, image: Path | str, out: Path | str, *,
                      endpoint: Endpoint, timeout: float = 120.0) -> tuple[MFSCCaptions, Path]:
    """Ask ``endpoint`` to caption ``image`` and store the answer as ``out/<dataset>/<category>.json``.

    The answer is validated before anything is written; the file is written atomically. Returns the record
    and the path written.
    """
    image = Path(image)
    body = request_body(dataset, category, image, endpoint.model, answer_schema())
    where = f"answer of {endpoint.model} at {endpoint.completions_url}"
    answer = answer_of(post(endpoint, body, timeout), where)
    check(answer, where, answer=True)
    record = {"version": 1, "dataset": dataset, "category": category,
              "source": {"kind": "generated", "model": endpoint.model, "image": image.name}, **answer}
    captions = validate(record, where)
    return captions, write_captions(captions, out)
