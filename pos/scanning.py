"""Scanning QR codes: the server-side decoder that a camera falls back on, and `/scan`.

Pages decode camera frames in the browser with the vendored zxing-wasm
(`web/static/vendor/zxing-wasm/`, driven by `web/static/scan.js`). Where it cannot load
(an old phone, a page without WebAssembly) or finds nothing for a while, the page sends a
downscaled frame here, and zxing-cpp reads it: the same decoder, compiled natively.

A picture is refused before any pixel is decoded when it is larger than `MAX_BYTES`, not
the JPEG or PNG it says it is, or has more pixels than a phone camera makes: a small file
may announce an enormous image (a decompression bomb).
"""

from __future__ import annotations

import io
import warnings
from typing import Annotated, Any

import zxingcpp
from fastapi import APIRouter, Header, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from PIL import Image
from pydantic import BaseModel, Field

from members.access import MaybeCounter, MemberOrCounter
from pos import scanning_errors as errors
from web.i18n import gettext_for
from web.pages import page, public_origin, to_login
from web.refusals import Refusal

router = APIRouter(tags=["pos"])

MAX_BYTES = 512 * 1024
MAX_SIDE = 4096  # pixels on a side: a 12-megapixel phone photo is 4032 × 3024
MAX_PIXELS = 16_000_000
# What a picture may be sent as, and the one format Pillow may read it as.
FORMATS = {"image/jpeg": "JPEG", "image/png": "PNG"}
DECODE_URL = "/api/v1/qr/decode"
DECODER_BASE = "/static/vendor/zxing-wasm/"
QR_CODES = zxingcpp.BarcodeFormats(zxingcpp.BarcodeFormat.QRCode)


class DecodedOut(BaseModel):
    text: str = Field(description="What the QR code says: a link of the node, a short code...")


_PICTURE = {"schema": {"type": "string", "format": "binary"}}
_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": f"A picture holding a QR code, at most {MAX_BYTES // 1024} KB.",
        "content": dict.fromkeys(FORMATS, _PICTURE),
    }
}


@router.post(DECODE_URL, openapi_extra=_BODY)
async def decode(
    request: Request,
    member: MemberOrCounter,
    content_type: Annotated[str, Header()] = "",
) -> DecodedOut:
    """Read the QR code in a picture (a camera frame the browser could not decode)."""
    kind = content_type.split(";")[0].strip().lower()
    if kind not in FORMATS:
        raise errors.IMAGE_TYPE()
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BYTES:
        raise errors.IMAGE_TOO_LARGE(limit_kb=MAX_BYTES // 1024)
    picture = await _body_within(request, MAX_BYTES)
    # zxing-cpp and Pillow hold the GIL little: decoding in a worker thread keeps the
    # event loop answering other requests meanwhile.
    return DecodedOut(text=await run_in_threadpool(read_qr, picture, FORMATS[kind]))


async def _body_within(request: Request, limit: int) -> bytes:
    """The request's body, refused as soon as it outgrows `limit` (whatever the
    Content-Length said, if anything): never more than that is held in memory."""
    received = bytearray()
    async for chunk in request.stream():
        received += chunk
        if len(received) > limit:
            raise errors.IMAGE_TOO_LARGE(limit_kb=limit // 1024)
    return bytes(received)


def read_qr(picture: bytes, image_format: str) -> str:
    """The text of the first QR code in a JPEG or PNG picture, or a refusal saying why none
    could be read."""
    image = _opened(picture, image_format)
    found = zxingcpp.read_barcodes(image, formats=QR_CODES)
    if not found:
        raise errors.NO_CODE_FOUND()
    return str(found[0].text)


def _opened(picture: bytes, image_format: str) -> Image.Image:
    """The picture as grey levels, checked to be the format named and of a sane size."""
    # Pillow refuses a damaged file with whatever its parser tripped on (OSError,
    # SyntaxError, ValueError, struct.error, EOFError...): to the sender they all mean the
    # same, so each step that parses the file turns any of them into one refusal.
    try:
        with warnings.catch_warnings():
            # Our own limits below come first; Pillow's bomb warning would only be noise.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(picture), formats=(image_format,))
    except Image.DecompressionBombError:
        raise _too_many_pixels() from None
    except Exception:
        raise errors.IMAGE_UNREADABLE() from None
    width, height = image.size
    if max(width, height) > MAX_SIDE or width * height > MAX_PIXELS:
        raise _too_many_pixels()
    try:
        return image.convert("L")  # the pixels are decoded here, not by `open`
    except Exception:
        raise errors.IMAGE_UNREADABLE() from None


def _too_many_pixels() -> Refusal:
    return errors.IMAGE_TOO_MANY_PIXELS(max_side=MAX_SIDE, max_megapixels=MAX_PIXELS // 1_000_000)


# What `SouScan` (web/static/scan.js) may tell people, by key (msgids; French in scan.po).
SCANNER_MESSAGES = {
    "denied": "The camera was refused: allow it in the browser's settings, or type the code.",
    "noCamera": "This device has no camera that can be used: type the code.",
    "insecure": "The camera works only on a secure page (https): type the code.",
    "unavailable": "The camera cannot be used here: type the code.",
    "offline": "The node cannot be reached to read the code: check the connection.",
}
# What the /scan page says, by key (msgids).
SCAN_PAGE_MESSAGES = {
    "starting": "Starting the camera…",
    "looking": "Point the camera at the code.",
    "read": "Code read.",
    "shortCode": "Short code read.",
    "opening": "A link of this node: opening it…",
    "foreign": "This code does not lead to this node: it is not opened.",
    "badCode": "Type a short code (letters, digits and dashes) or a whole link.",
}


def scanner_data(request: Request) -> dict[str, object]:
    """What a page that scans gives `SouScan.start` (with its own onCode and onError): put
    it in the page's data block, e.g. `{"scanner": scanner_data(request), ...}`."""
    tr = gettext_for(request)
    return {
        "origin": public_origin(request),
        "decodeUrl": DECODE_URL,
        "decoderBase": DECODER_BASE,
        "messages": {key: tr.gettext(msgid) for key, msgid in SCANNER_MESSAGES.items()},
    }


@router.get("/scan", include_in_schema=False)
def scan_page(request: Request, p: MaybeCounter) -> Response:
    """Scan any code of the node with the camera (or type its short code): a link of this
    node opens, anything else is shown as text."""
    if p is None:
        return to_login(request)
    tr = gettext_for(request)
    data = {
        "page": "scan",
        "scanner": scanner_data(request),
        "messages": {key: tr.gettext(msgid) for key, msgid in SCAN_PAGE_MESSAGES.items()},
    }
    return page(request, "pos/scan.html", data=data)
