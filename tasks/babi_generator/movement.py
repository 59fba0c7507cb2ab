"""Tasks about people moving between rooms and carrying objects: 1, 2, 3, 5, 6, 7, 8."""

from __future__ import annotations

import random

from tasks.babi_generator.world import ACTORS, LOCATIONS, Story, generator, move_sentence


@generator(1, "single-supporting-fact")
def single_supporting_fact(rng: random.Random) -> Story:
    """Two moves, then "Where is X?" about someone who has moved; five questions a story.

    The answer is X's latest location; the supporting fact is the sentence that moved X there.
    """
    story = Story()
    last_move: dict[str, tuple[str, int]] = {}  # actor -> (location, line id)
    while story.questions < 5:
        for _ in range(2):
            actor, location = rng.choice(ACTORS), rng.choice(LOCATIONS)
            last_move[actor] = (location, story.tell(move_sentence(rng, actor, location)))
        actor = rng.choice(sorted(last_move))
        location, line = last_move[actor]
        story.ask(f"Where is {actor}? ", location, [line])
    return story
