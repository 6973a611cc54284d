"""JSON: one report object per document, an array when several documents are given."""

from __future__ import annotations

import json as _json

from engine.formatters.base import Formatter, json_shown, register
from engine.report import Report


@register
class JsonFormatter(Formatter):
    name = "json"
    suffix = ".json"

    def render(self, reports: list[Report]) -> str:
        if len(reports) == 1:  # pydantic writes non-ASCII raw: bidi overrides included
            return json_shown(reports[0].model_dump_json(indent=2))
        return _json.dumps([r.model_dump(mode="json") for r in reports], indent=2)
