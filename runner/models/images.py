"""Images for vision models: a file path or URL an `llm` step names → an OpenAI `image_url` content part (the form
litellm and the openai SDK both send). Files are read here, confined like a tool's reads; URLs go as they are, for
the provider to fetch."""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path
from typing import Any

from runner.i18n import _

MAX_IMAGE_BYTES = 20 * 1024 * 1024  # what OpenAI takes per image; larger ones are refused before the call
_SIGNATURES = ((b"\x89PNG\r\n\x1a\n", "image/png"), (b"\xff\xd8\xff", "image/jpeg"), (b"GIF87a", "image/gif"),
               (b"GIF89a", "image/gif"))


class ImageError(ValueError):
    """An image that cannot be sent: the message names it and says what to do."""


def image_type(head: bytes) -> str | None:
    """The MIME type from the file's first bytes (its name can lie): PNG, JPEG, GIF or WebP."""
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    return next((mime for signature, mime in _SIGNATURES if head.startswith(signature)), None)


def image_part(given: Any, resolve: Callable[[str], Path]) -> dict[str, Any]:
    """One content part. `resolve` turns a path into a readable file (or raises ToolArgumentError: outside what
    a run may read)."""
    if not isinstance(given, str) or not given.strip():
        raise ImageError(_("an image is a file path or an http(s) URL, not {value!r}").format(value=given))
    text = given.strip()
    if text.startswith(("http://", "https://", "data:image/")):
        return {"type": "image_url", "image_url": {"url": text}}
    path = resolve(text)
    try:
        size = path.stat().st_size
        if size > MAX_IMAGE_BYTES:
            raise ImageError(_("image '{path}' is {size} MB; models take images up to {limit} MB — make it "
                               "smaller").format(path=text, size=round(size / 2**20, 1),
                                                 limit=MAX_IMAGE_BYTES // 2**20))
        data = path.read_bytes()
    except (IsADirectoryError, FileNotFoundError, PermissionError) as exc:
        raise ImageError(_("cannot read image '{path}': {reason}").format(path=text, reason=exc.strerror)) from None
    mime = image_type(data[:16])
    if mime is None:
        raise ImageError(_("'{path}' is not a PNG, JPEG, GIF or WebP image").format(path=text))
    encoded = base64.b64encode(data).decode("ascii")
    return {"type": "image_url", "image_url": {"url": f"data:{mime};base64,{encoded}"}}
