# Copyright 2026 The hk_effects Authors. All Rights Reserved.
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.
# ==============================================================================
"""Text and HTML rendering of inspection tables."""

from __future__ import annotations

import html

from hk_effects._src.core import effect_base

HEADER = ("module", "attribute", "request", "handler")


def cells(row) -> tuple[str, str, str, str]:
  """A binding row as text, one cell per ``HEADER`` column."""
  request = row.request.describe()
  return (row.module_path, row.attribute_path, request, row.handler_id)


def text_table(header, cells, stopped_at: str | None) -> str:
  """Aligned columns under ``header``, a rule under it when there are rows."""
  lines = [header, *cells]
  widths = [max(len(c[i]) for c in lines) for i in range(len(header))]
  text = [
      " | ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip()
      for line in lines
  ]
  if cells:
    text.insert(1, "-+-".join("-" * w for w in widths))
  if stopped_at:
    text.append(f"(stopped early at unhandled {stopped_at})")
  return "\n".join(text)


def html_table(rows, stopped_at: str | None) -> str:
  """An HTML ``<table>`` of binding rows, coloured by effect."""
  lines = []
  for row in rows:
    protocol = row.request.effect_protocol()
    colour = effect_base.effect_colour(protocol)
    style = f"background:{colour}33;border-left:4px solid {colour}"
    if row.handler_id == "unhandled":
      style += ";font-weight:bold;color:#b00"
    lines.append(
        f'<tr style="{style}" title="{protocol.__name__}">'
        + "".join(f"<td>{html.escape(c)}</td>" for c in cells(row))
        + "</tr>"
    )
  head = "".join(f"<th>{h}</th>" for h in HEADER)
  note = (
      f"<caption>stopped early at unhandled {html.escape(stopped_at)}</caption>"
      if stopped_at
      else ""
  )
  return f"<table>{note}<tr>{head}</tr>{''.join(lines)}</table>"
