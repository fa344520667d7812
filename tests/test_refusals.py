"""A refused field is named in the reader's words, even inside a list of lines."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.people import join


@pytest.mark.one_database
def test_a_field_of_a_line_is_named_by_its_name_not_its_path(site: TestClient) -> None:
    zoe = join(site, "Zoé")
    zoe.extra_headers["Accept-Language"] = "fr"
    body = {
        "title": "Réparer le lavoir",
        "description": "Le toit fuit.",
        "goal": 10_000,
        "days": 10,
        "tiers": [{"minimum": 500, "title": "Merci"}, {"minimum": 0, "title": "Rien"}],
    }
    answer = zoe.post("/api/v1/campaigns", json=body)
    assert answer.status_code == 422, answer.text
    refused = answer.json()
    assert refused["field"] == "tiers.1.minimum"  # the JSON keeps the path, for scripts
    assert refused["message"] == (
        "Le champ le minimum n’est pas valide\u202f: doit valoir plus de 0."
    ), refused["message"]
