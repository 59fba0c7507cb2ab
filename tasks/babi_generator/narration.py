"""Tasks told with narrative variants: negation, indefinite knowledge, coreference, conjunction, time: 9-14."""

from __future__ import annotations
