"""The pieces every bAbI task generator shares: the story being written and the registry.

A generator is a function ``story(rng) -> Story`` that simulates one small world (people, places,
objects), narrates its events with the upstream task's sentence templates and asks questions whose
answers and supporting facts come from the true world state. ``generate_file`` strings stories
together until the file holds the requested number of questions, in exactly the upstream format::

    1 Mary moved to the bathroom.
    2 John went to the hallway.
    3 Where is Mary? <TAB>bathroom<TAB>1
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field


@dataclass
class Story:
    """Lines of one story, numbered from 1 as they are told; questions are numbered too."""

    lines: list[str] = field(default_factory=list)
    questions: int = 0

    def tell(self, sentence: str) -> int:
        """Add a statement; returns its line id, for the supporting facts of later questions."""
        self.lines.append(sentence)
        return len(self.lines)

    def ask(self, question: str, answer: str, supporting: Iterable[int]) -> None:
        """Add a question. ``question`` is written as the upstream task writes it (some end "? ")."""
        ids = " ".join(str(i) for i in supporting)
        self.lines.append(f"{question}\t{answer}\t{ids}")
        self.questions += 1


@dataclass(frozen=True)
class Generator:
    task: int
    name: str  # the upstream file name part: qa{task}_{name}_{split}.txt
    story: Callable[[random.Random], Story]


GENERATORS: dict[int, Generator] = {}


def generator(task: int, name: str):
    """Register ``story(rng) -> Story`` as the generator of bAbI task ``task``."""

    def register(story: Callable[[random.Random], Story]):
        if task in GENERATORS:
            raise ValueError(f"bAbI task {task} already has a generator ({GENERATORS[task].story.__name__})")
        GENERATORS[task] = Generator(task, name, story)
        return story

    return register


def numbered_story(task: int, rng: random.Random) -> list[str]:
    """One story of bAbI task ``task`` as the lines of the upstream file format (``<id> <line>``)."""
    return [f"{number} {line}" for number, line in enumerate(GENERATORS[task].story(rng).lines, 1)]


def generate_file(task: int, questions: int, rng: random.Random) -> str:
    """Stories until ``questions`` questions are asked; the last story stops at the last one."""
    lines: list[str] = []
    asked = 0
    while asked < questions:
        for line in numbered_story(task, rng):
            lines.append(line)
            if "\t" in line:
                asked += 1
                if asked == questions:
                    break
    return "".join(line + "\n" for line in lines)


# --- the world most tasks share: people moving between rooms (tasks 1-3, 5-8) -----------------

ACTORS = ("Mary", "John", "Daniel", "Sandra")
LOCATIONS = ("bathroom", "hallway", "garden", "office", "bedroom", "kitchen")
MOVES = ("moved to", "went to", "went back to", "journeyed to", "travelled to")


def move_sentence(rng: random.Random, actor: str, location: str) -> str:
    return f"{actor} {rng.choice(MOVES)} the {location}."
