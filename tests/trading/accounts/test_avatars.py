import hashlib
import xml.etree.ElementTree as ET
from uuid import uuid4

import pytest
from rest_framework.test import APIClient

from apps.trading.avatars import GRID, identicon_cells, identicon_color, identicon_svg

SVG = "{http://www.w3.org/2000/svg}"


def test_same_id_same_picture_and_different_ids_differ():
    ids = [str(uuid4()) for _ in range(50)]

    pictures = {identicon_svg(i) for i in ids}

    assert identicon_svg(ids[0]) == identicon_svg(ids[0])
    assert len(pictures) >= 49  # 2^15 patterns x colours: a collision in 50 is very unlikely


def test_grid_is_mirrored_and_drawn_from_the_hash():
    identifier = "portfolio-42"
    cells = set(identicon_cells(identifier))
    bits = int.from_bytes(hashlib.sha256(identifier.encode()).digest()[:4], "big")

    for row in range(GRID):
        for column in range(3):
            expected = bool(bits >> (row * 3 + column) & 1)
            assert ((column, row) in cells) is expected
            assert ((GRID - 1 - column, row) in cells) is expected


def test_svg_is_valid_and_uses_the_colour():
    identifier = "alice"
    root = ET.fromstring(identicon_svg(identifier))

    assert root.tag == f"{SVG}svg"
    group = root.find(f"{SVG}g")
    assert group is not None
    assert group.get("fill") == identicon_color(identifier)
    assert len(group.findall(f"{SVG}rect")) == len(identicon_cells(identifier))
    assert identicon_color(identifier).startswith("#") and len(identicon_color(identifier)) == 7


def test_the_id_never_appears_in_the_svg():
    hostile = '"><script>alert(1)</script>'

    assert "script" not in identicon_svg(hostile)


@pytest.mark.django_db
def test_endpoint_serves_a_cacheable_svg_to_anyone():
    identifier = str(uuid4())

    response = APIClient().get(f"/api/avatars/{identifier}.svg")

    assert response.status_code == 200
    assert response["Content-Type"] == "image/svg+xml"
    assert "max-age=31536000" in response["Cache-Control"]
    assert response.content.decode() == identicon_svg(identifier)


@pytest.mark.django_db
def test_any_short_string_works_and_a_long_one_is_refused():
    client = APIClient()

    assert client.get("/api/avatars/user.42.svg").content.decode() == identicon_svg("user.42")
    assert client.get(f"/api/avatars/{'x' * 64}.svg").status_code == 200
    too_long = client.get(f"/api/avatars/{'x' * 65}.svg")
    assert too_long.status_code == 400
    assert too_long.json()["error"]["code"] == "invalid"
    assert client.post("/api/avatars/a.svg").status_code == 405
