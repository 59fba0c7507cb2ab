"""How a count reads in the tool's lines and model cards."""


def counted(n: int, noun: str) -> str:
    """``n`` and ``noun``, plural unless n is 1: "1 epoch", "2 epochs"."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
