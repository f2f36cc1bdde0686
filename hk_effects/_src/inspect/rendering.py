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
"""HTML rendering of binding tables, one colour per effect protocol."""

from __future__ import annotations

import html

from hk_effects._src.core import effect_base


def html_table(table) -> str:
  """An HTML ``<table>`` of a ``BindingTable``, rows coloured by effect.

  Example:

  >>> import hk_effects as hke
  >>> html_table(hke.BindingTable([])).startswith("<table")
  True
  """
  rows = []
  for row in table.rows:
    protocol = row.request.effect_protocol()
    colour = effect_base.effect_colour(protocol)
    cells = (
        row.module_path,
        row.attribute_path,
        row.request.describe(),
        row.handler_id,
    )
    style = f"background:{colour}33;border-left:4px solid {colour}"
    weight = "" if row.handled else ";font-weight:bold;color:#b00"
    rows.append(
        f'<tr style="{style}{weight}" title="{protocol.__name__}">'
        + "".join(f"<td>{html.escape(c)}</td>" for c in cells)
        + "</tr>"
    )
  head = "".join(
      f"<th>{h}</th>" for h in ("module", "attribute", "request", "handler")
  )
  note = (
      "<caption>stopped early at unhandled "
      f"{html.escape(table.stopped_at)}</caption>"
      if table.stopped_at
      else ""
  )
  return f"<table>{note}<tr>{head}</tr>{''.join(rows)}</table>"
