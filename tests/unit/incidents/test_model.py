"""The incident record's stored form: the JSON the stores keep is exactly `to_doc()`, and reads back."""

from __future__ import annotations

import orjson

from correlator.incidents.model import Incident, Status


def test_the_stored_json_is_the_document_and_reads_back_as_the_same_incident():
    inc = Incident("Gi0/1 down", 1_800_000_000.25, impact=1, urgency=2, priority="P2", id=7, key="k",
                   status=Status.RESOLVED, resolved_at=1_800_000_600.5, problem_id="PRB-000001")  # fmt: skip
    assert orjson.loads(inc.to_json()) == inc.to_doc()
    assert list(orjson.loads(inc.to_json())) == list(inc.to_doc())  # same fields, same order
    assert Incident.from_doc(orjson.loads(inc.to_json())) == inc
