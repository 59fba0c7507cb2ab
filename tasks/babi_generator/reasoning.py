"""Tasks about static relations and reasoning: 4, 15, 16, 17, 18, 19, 20."""

from __future__ import annotations
