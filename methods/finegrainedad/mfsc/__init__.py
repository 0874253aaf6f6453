"""MFSC: multi-level fine-grained semantic captions of each category, as FineGrainedAD reads them.

Three levels and a summary: the image view (foreground, background), the foreground view (entities with
number and location, and their relation), the component view (direction, colour, texture, shape and a
caption per entity). Attribute values are base values of a vocabulary or extensions joining several.
``schema.json`` defines the fields; ``data/<dataset>/<category>.json`` holds the shipped captions.
"""
from __future__ import annotations

from .client import API_KEY_ENV, ENDPOINT_ENV, MODEL_ENV, Endpoint
from .errors import CaptionsError, MissingCaptionsError
from .generate import generate_captions
from .store import caption_path, check_folder, load_captions, read_captions, shipped_dir, write_captions
from .types import (
    AttributeValue,
    Component,
    ComponentView,
    Entity,
    ForegroundView,
    ImageView,
    MFSCCaptions,
    Source,
)
from .validate import attributes, schema, validate, vocabulary

__all__ = [
    "API_KEY_ENV",
    "ENDPOINT_ENV",
    "MODEL_ENV",
    "AttributeValue",
    "CaptionsError",
    "Component",
    "ComponentView",
    "Endpoint",
    "Entity",
    "ForegroundView",
    "ImageView",
    "MFSCCaptions",
    "MissingCaptionsError",
    "Source",
    "attributes",
    "caption_path",
    "check_folder",
    "generate_captions",
    "load_captions",
    "read_captions",
    "schema",
    "shipped_dir",
    "validate",
    "vocabulary",
    "write_captions",
]
