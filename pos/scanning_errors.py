"""The refusals of the server-side QR decoder (`POST /api/v1/qr/decode`): what a picture sent
by a camera that could not decode it itself is refused for (msgids; French in
web/locale/fr/LC_MESSAGES/scan.po). Refusals every feature shares are in members/errors.py.
"""

from __future__ import annotations

from web.refusals import NamedRefusal

IMAGE_TOO_LARGE = NamedRefusal(
    413, "image_too_large", "The picture is too large: send at most {limit_kb} KB."
)
IMAGE_TOO_MANY_PIXELS = NamedRefusal(
    413,
    "image_too_many_pixels",
    "The picture has too many pixels: at most {max_side} on a side and {max_megapixels} "
    "megapixels in all.",
)
IMAGE_TYPE = NamedRefusal(
    415, "unsupported_image_type", "Send the picture as JPEG or PNG (image/jpeg, image/png)."
)
IMAGE_UNREADABLE = NamedRefusal(
    422, "unreadable_image", "This picture cannot be read: it is damaged, or not what it says."
)
NO_CODE_FOUND = NamedRefusal(
    422, "no_code_found", "No QR code was found in this picture: hold the code steady, closer."
)
