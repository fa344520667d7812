"""The server-side QR decoder (`POST /api/v1/qr/decode`), what a camera falls back on, and the
/scan page: every code the node makes reads back; whatever else is sent is refused with a
precise 4xx, never a 500 (random bytes included); the vendored browser decoder is served
from the node, its WebAssembly with the type that lets it compile.
"""

from __future__ import annotations

import hashlib
import importlib
import io
import json
import pkgutil
import re
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from pos import scanning, scanning_errors
from tests.people import Person, join, new_client, operator
from tests.test_pages import french_catalogue, python_msgids, template_msgids
from web.qr import qr_png
from web.refusals import NamedRefusal

# What these tests check does not depend on the database.
pytestmark = pytest.mark.one_database

ROOT = Path(__file__).resolve().parents[1]
VENDOR = ROOT / "web" / "static" / "vendor" / "zxing-wasm"
DECODE = scanning.DECODE_URL
LINK = "https://sou.example.org/village/pay?m=chez-zoe&a=1250&i=inv-8f3k2q&s=" + "Ab9_-" * 17


@pytest.fixture
def zoe(site: TestClient) -> Person:
    """A shopkeeper at her counter, signed in: who scans customers' codes."""
    return join(site, "Zoé", role="merchant", key=False)


def decode(who: Person, picture: bytes, kind: str = "image/png", **kw: Any) -> Any:
    headers = {**who.headers(), "Content-Type": kind}
    return who.client.post(DECODE, content=picture, headers=headers, **kw)


def png_of(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def jpeg_of(picture: bytes, quality: int = 85) -> bytes:
    out = io.BytesIO()
    Image.open(io.BytesIO(picture)).convert("RGB").save(out, "JPEG", quality=quality)
    return out.getvalue()


def refused(answer: Any, status: int, code: str) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert body["error"] == code, body
    return dict(body)


# -- reading codes ----------------------------------------------------------------------------


@pytest.mark.parametrize("text", [LINK, "SOU-7K2Q-9XM4", "Épicerie « Chez Zoé » · 12,50 €"])
def test_a_code_the_node_makes_reads_back_to_its_text(zoe: Person, text: str) -> None:
    answer = decode(zoe, qr_png(text))
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"text": text}


def test_a_camera_frame_as_jpeg_reads_too(zoe: Person) -> None:
    # What scan.js sends: a frame with the code somewhere in it, as a JPEG.
    frame = Image.new("RGB", (1024, 576), (200, 190, 170))
    frame.paste(Image.open(io.BytesIO(qr_png(LINK, box_size=4))), (600, 120))
    answer = decode(zoe, jpeg_of(png_of(frame)), "image/jpeg")
    assert answer.status_code == 200, answer.text
    assert answer.json()["text"] == LINK


def test_every_member_may_ask_and_a_visitor_may_not(site: TestClient) -> None:
    picture = qr_png("SOU-7K2Q-9XM4")
    camille = join(site, "Camille", key=False)
    made = camille.post("/api/v1/me/tokens", json={"scope": "wallet", "label": "Agenda"})
    bearer = {"Authorization": f"Bearer {made.json()['token']}"}
    with_token = Person(new_client(site), {}, extra_headers=bearer)
    for who in (camille, operator(site, "office"), with_token):
        assert decode(who, picture).json() == {"text": "SOU-7K2Q-9XM4"}
    visitor = Person(new_client(site), {})
    refused(decode(visitor, picture), 401, "login_required")


def test_a_session_must_send_its_csrf_token(zoe: Person) -> None:
    zoe.csrf = "not the session's"
    refused(decode(zoe, qr_png("SOU-7K2Q-9XM4")), 403, "csrf")


# -- refusals ---------------------------------------------------------------------------------


def test_a_picture_without_a_code(zoe: Person) -> None:
    landscape = Image.linear_gradient("L").resize((640, 480))
    body = refused(decode(zoe, png_of(landscape)), 422, "no_code_found")
    assert body["message"].startswith("Aucun code QR n’a été trouvé")


def test_a_picture_over_512_kb_is_refused_before_it_is_read(zoe: Person) -> None:
    noise = Image.effect_noise((600, 600), 120).convert("RGB")
    picture = png_of(noise)
    assert len(picture) > scanning.MAX_BYTES
    body = refused(decode(zoe, picture), 413, "image_too_large")
    assert body["limit_kb"] == 512
    assert "512 Ko" in body["message"]


def test_a_body_streamed_without_its_length_is_cut_at_the_limit(zoe: Person) -> None:
    def chunks() -> Iterator[bytes]:  # sent chunked: no Content-Length to trust
        yield qr_png("SOU-7K2Q-9XM4")
        for _ in range(40):
            yield b"\0" * 16_384

    refused(decode(zoe, chunks()), 413, "image_too_large")  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", ["text/plain", "image/gif", "image/webp", "application/json", ""])
def test_only_jpeg_and_png_are_taken(zoe: Person, kind: str) -> None:
    body = refused(decode(zoe, qr_png("SOU-7K2Q-9XM4"), kind), 415, "unsupported_image_type")
    assert body["message"] == "Envoyez l’image en JPEG ou en PNG (image/jpeg, image/png)."


def test_a_picture_must_be_what_it_says(zoe: Person) -> None:
    picture = qr_png("SOU-7K2Q-9XM4")
    refused(decode(zoe, picture, "image/jpeg"), 422, "unreadable_image")
    refused(decode(zoe, jpeg_of(picture), "image/png"), 422, "unreadable_image")
    gif = io.BytesIO()
    Image.open(io.BytesIO(picture)).save(gif, "GIF")
    refused(decode(zoe, gif.getvalue(), "image/png"), 422, "unreadable_image")


@pytest.mark.parametrize(
    "damage",
    [
        lambda p: b"",
        lambda p: b"not an image at all",
        lambda p: p[:40],  # the header, then nothing
        lambda p: p[: len(p) // 2],  # cut in the middle of the pixels
        lambda p: p[:60] + bytes(b ^ 0x5A for b in p[60:]),  # pixels scrambled
    ],
    ids=["empty", "text", "header-only", "truncated", "scrambled"],
)
def test_damaged_pictures_are_unreadable(zoe: Person, damage: Any) -> None:
    for kind, picture in (("image/png", qr_png(LINK)), ("image/jpeg", jpeg_of(qr_png(LINK)))):
        answer = decode(zoe, damage(picture), kind)
        assert answer.status_code == 422, (kind, answer.text)
        assert answer.json()["error"] in ("unreadable_image", "no_code_found"), answer.text


def bomb_png(width: int, height: int) -> bytes:
    """A white 1-bit PNG of any size, written by hand: a few KB that claim huge pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return len(data).to_bytes(4, "big") + body + zlib.crc32(body).to_bytes(4, "big")

    row = b"\0" + b"\xff" * ((width + 7) // 8)
    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([1, 0, 0, 0, 0])
    pixels = zlib.compress(row * height, 9)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize("size", [(20_000, 20_000), (5_000, 8), (4_000, 4_001)])
def test_pictures_claiming_too_many_pixels_are_refused_unread(
    zoe: Person, size: tuple[int, int]
) -> None:
    picture = bomb_png(*size)
    assert len(picture) < scanning.MAX_BYTES
    body = refused(decode(zoe, picture), 413, "image_too_many_pixels")
    assert (body["max_side"], body["max_megapixels"]) == (4096, 16)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    st.one_of(
        st.binary(max_size=2_048),
        st.builds(lambda noise: qr_png("SOU-7K2Q")[:50] + noise, st.binary(max_size=2_048)),
        st.builds(lambda noise: jpeg_of(qr_png("SOU-7K2Q"))[:300] + noise, st.binary()),
    ),
    st.sampled_from(["image/png", "image/jpeg", "image/png; charset=binary", "image/gif"]),
)
def test_random_bytes_are_never_a_server_error(zoe: Person, picture: bytes, kind: str) -> None:
    answer = decode(zoe, picture, kind)
    assert answer.status_code in (200, 413, 415, 422), answer.text
    if answer.status_code != 200:
        assert answer.json()["error"] in {
            r.code for r in vars(scanning_errors).values() if isinstance(r, NamedRefusal)
        }


def test_the_decoder_is_in_the_api_schema_with_its_picture_types(site: TestClient) -> None:
    operation = site.get("/openapi.json").json()["paths"][DECODE]["post"]
    assert set(operation["requestBody"]["content"]) == {"image/jpeg", "image/png"}


# -- the decoder in the browser, served by the node --------------------------------------------


def test_the_vendored_decoder_is_served_with_its_licences(site: TestClient) -> None:
    wasm = site.get("/static/vendor/zxing-wasm/zxing_reader.wasm")
    assert wasm.status_code == 200
    assert wasm.headers["content-type"] == "application/wasm"  # streaming compile needs it
    assert wasm.content[:4] == b"\0asm"
    script = site.get("/static/vendor/zxing-wasm/zxing_reader.js")
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("text/javascript")
    # The script names the .wasm it was built with: the two files come from one release.
    assert hashlib.sha256(wasm.content).hexdigest() in script.text
    assert "MIT License" in (VENDOR / "LICENSE").read_text()
    assert "Apache License" in (VENDOR / "LICENSE.zxing-cpp").read_text()
    readme = (VENDOR / "README.md").read_text()
    assert re.search(r"zxing-wasm 3\.1\.6", readme)
    version = re.search(r"ZXING_WASM_VERSION=(\w+)", script.text)
    assert version is not None
    assert re.search(rf"\b{version[1]}=`3\.1\.6`", script.text)


# -- the /scan page ---------------------------------------------------------------------------


def test_the_scan_page_is_for_members_signed_in(site: TestClient, zoe: Person) -> None:
    html = {"Accept": "text/html"}
    away = new_client(site).get("/scan", headers=html, follow_redirects=False)
    assert away.status_code == 303
    assert away.headers["location"] == "/login?next=%2Fscan"
    shown = zoe.client.get("/scan", headers=html)
    assert shown.status_code == 200
    assert "<h1>Scanner un code</h1>" in shown.text
    assert "<script>" not in shown.text  # data blocks only: a strict CSP is coming
    found = re.search(r'<script type="application/json" id="page-data">(.*?)</script>', shown.text)
    assert found is not None
    data = json.loads(found[1])
    assert data["page"] == "scan"
    assert data["scanner"]["decodeUrl"] == DECODE
    assert data["scanner"]["decoderBase"] == "/static/vendor/zxing-wasm/"
    assert data["scanner"]["origin"] == "http://127.0.0.1"
    assert data["scanner"]["messages"]["denied"].startswith("L’accès à la caméra a été refusé")
    assert data["messages"]["opening"] == "Un lien de ce nœud\u202f: ouverture…"


def test_a_point_of_sale_token_neither_opens_the_page_nor_decodes(
    site: TestClient, zoe: Person
) -> None:
    made = zoe.post("/api/v1/me/tokens", json={"scope": "pos", "label": "Caisse"})
    assert made.status_code == 201, made.text
    bearer = {"Authorization": f"Bearer {made.json()['token']}"}
    device = Person(new_client(site), {}, extra_headers=bearer)
    refused(decode(device, qr_png("SOU-7K2Q")), 403, "token_scope")
    page = device.client.get("/scan", headers={**bearer, "Accept": "text/html"})
    assert page.status_code == 403


# -- messages ---------------------------------------------------------------------------------


def test_every_message_of_scanning_has_its_french() -> None:
    msgids = python_msgids(ROOT / "pos" / "scanning_errors.py")
    msgids |= python_msgids(ROOT / "pos" / "scanning.py")
    msgids |= template_msgids(ROOT / "web" / "templates" / "pos" / "scan.html")
    assert len(msgids) > 20
    catalogue = french_catalogue()
    assert not [m for m in msgids if not catalogue.get(m)]
    placeholders = re.compile(r"\{\w+\}")
    for msgid in msgids:
        assert sorted(placeholders.findall(msgid)) == sorted(
            placeholders.findall(catalogue[msgid])
        ), msgid


def test_the_scanners_refusal_codes_mean_one_thing_across_the_node() -> None:
    said: dict[str, set[tuple[int, str]]] = {}
    modules = ["pos.scanning_errors"]
    for package in ("members", "wallet_api", "merchants", "pos"):
        root = importlib.import_module(package)
        found = pkgutil.walk_packages(root.__path__, f"{package}.")
        modules += [m.name for m in found if m.name.endswith(".errors")]
    for name in modules:
        for value in vars(importlib.import_module(name)).values():
            if isinstance(value, NamedRefusal):
                said.setdefault(value.code, set()).add((value.status, value.message))
    ours = {r.code for r in vars(scanning_errors).values() if isinstance(r, NamedRefusal)}
    assert len(ours) == 5
    assert all(len(said[code]) == 1 for code in ours), {c: said[c] for c in ours}
