"""Tasks told with narrative variants: negation, indefinite knowledge, coreference, conjunction, time: 9-14.

People move between places, as in task 1, but the story says it in other ways: "X is no longer in
the Y", "X is either in the A or the B", "Then he went to ...", "Mary and Daniel went to ...",
"After that they ...", "Yesterday ...". Each actor has a true location at every moment, so an
answer is read off the world; the support is the sentence(s) that told the reader so.

Upstream asks about someone the story has just spoken of: the actor of one of the last five
*clauses* told (a clause is one actor's move, so "Mary and Daniel went to ..." holds two and a
"Then they ..." sentence two more; task 14 looks back six moves). Questions are asked after every
two sentences (after task 14's opening of 2-6), five a story.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from tasks.babi_generator.world import ACTORS, LOCATIONS, MOVES, Story, generator, move_sentence

# Tasks 10 and 14 have a cast and places of their own.
TOWN_ACTORS = ("Fred", "Bill", "Mary", "Julie")
TOWN_LOCATIONS = ("school", "park", "office", "kitchen", "cinema", "bedroom")

PRONOUNS = {"Mary": "she", "Sandra": "she", "John": "he", "Daniel": "he"}
AFTERWARDS = ("Then", "After that", "Afterwards", "Following that")
TIMES = ("yesterday", "this morning", "this afternoon", "this evening")  # in the order they happen

Fact = tuple[int, tuple[str, ...], bool]  # tasks 9, 10: (line, places it allows, affirmative)

QUESTIONS_PER_STORY = 5
RECENT_CLAUSES = 5
RECENT_MOVES = 6  # task 14 (measured on upstream's choice of questions)


def elsewhere(rng: random.Random, locations: tuple[str, ...], *excluded: str | None) -> str:
    """A location other than the excluded ones (an actor never 'moves' to where they already are)."""
    return rng.choice([location for location in locations if location not in excluded])


def recent_actor(rng: random.Random, clauses: list[str]) -> str:
    """The actor of one of the last five clauses told: whom upstream asks about."""
    return rng.choice(clauses[-RECENT_CLAUSES:])


def arrival_sentence(rng: random.Random, kind: str, actor: str, location: str) -> str:
    """Tasks 9 and 10 tell a move as a move ("Mary went to the L.") or as a state ("Mary is in the L.")."""
    return move_sentence(rng, actor, location) if kind == "move" else f"{actor} is in the {location}."


def ask_yes_no(rng: random.Random, story: Story, actor: str, fact: Fact, locations: tuple[str, ...]) -> None:
    """Ask "Is X in the L?" about the latest fact told of X.

    The place asked is one the fact names; half the time an affirmative fact's place is swapped
    for another. Upstream answers: the one place of a definite fact "yes", one of an "either" pair
    "maybe" (even when both names are the same place), a denied place or any other place "no".
    """
    line, places, affirmative = fact
    asked = rng.choice(places)
    if affirmative and rng.random() < 0.5:
        asked = elsewhere(rng, locations, asked)
    if not affirmative or asked not in places:
        answer = "no"
    else:
        answer = "yes" if len(places) == 1 else "maybe"
    story.ask(f"Is {actor} in the {asked}? ", answer, [line])


def yes_no_story(rng: random.Random, actors: tuple[str, ...], locations: tuple[str, ...],
                 statement: Callable[[random.Random, Story, str, dict[str, str]], Fact]) -> Story:
    """Tasks 9 and 10: two statements, each ``statement(rng, story, actor, where)`` about a random
    actor (it tells one sentence, updates ``where`` and returns the fact it told), then "Is X in the
    L?" about one of the last five clauses' actors, five times. Every actor starts somewhere unsaid."""
    story = Story()
    where = {actor: rng.choice(locations) for actor in actors}
    latest: dict[str, Fact] = {}
    clauses: list[str] = []
    while story.questions < QUESTIONS_PER_STORY:
        for _ in range(2):
            actor = rng.choice(actors)
            latest[actor] = statement(rng, story, actor, where)
            clauses.append(actor)
        actor = recent_actor(rng, clauses)
        ask_yes_no(rng, story, actor, latest[actor], locations)
    return story


@generator(9, "simple-negation")
def simple_negation(rng: random.Random) -> Story:
    """Yes/no questions (``yes_no_story``). Half of the statements are a move ("X went to the L"), a
    quarter "X is in the L" (a move too), a quarter "X is no longer in the L" / "X is not in the L"
    about where X was, who is then somewhere unsaid. The question is about the latest fact told of
    X, which is its support: a denied place is asked as is ("no"); an affirmed one half the time
    ("yes"), otherwise another place ("no").
    """

    def statement(rng: random.Random, story: Story, actor: str, where: dict[str, str]) -> Fact:
        kind = rng.choice(("move", "move", "is", "not"))
        if kind == "not":
            left = where[actor]
            where[actor] = elsewhere(rng, LOCATIONS, left)
            return story.tell(f"{actor} is {rng.choice(('no longer', 'not'))} in the {left}."), (left,), False
        where[actor] = elsewhere(rng, LOCATIONS, where[actor])
        return story.tell(arrival_sentence(rng, kind, actor, where[actor])), (where[actor],), True

    return yes_no_story(rng, ACTORS, LOCATIONS, statement)


@generator(10, "indefinite-knowledge")
def indefinite_knowledge(rng: random.Random) -> Story:
    """Yes/no/maybe questions (``yes_no_story``) in the town world (Fred, Bill, Mary, Julie; school,
    park, ...). Each statement moves a random actor somewhere new: half of them told as a move, a
    quarter as "X is in the L", a quarter as "X is either in the A or the B", one of which is the new
    place and the other any place, the new one included (upstream writes "either in the park or the
    park" about one time in six), in random order. The question is about the latest fact told of X,
    its support; see ``ask_yes_no`` for the place asked and the answer.
    """

    def statement(rng: random.Random, story: Story, actor: str, where: dict[str, str]) -> Fact:
        kind = rng.choice(("move", "move", "is", "either"))
        where[actor] = elsewhere(rng, TOWN_LOCATIONS, where[actor])
        if kind == "either":
            places = [where[actor], rng.choice(TOWN_LOCATIONS)]
            rng.shuffle(places)
            return story.tell(f"{actor} is either in the {places[0]} or the {places[1]}."), tuple(places), True
        return story.tell(arrival_sentence(rng, kind, actor, where[actor])), (where[actor],), True

    return yes_no_story(rng, TOWN_ACTORS, TOWN_LOCATIONS, statement)


def afterwards_sentence(rng: random.Random, subject: str, location: str) -> str:
    return f"{rng.choice(AFTERWARDS)} {subject} {rng.choice(MOVES)} the {location}."


Episode = Callable[[random.Random, Story, dict[str, str], dict[str, list[int]]], list[str]]


def where_story(rng: random.Random, episode: Episode) -> Story:
    """Tasks 11 to 13: an ``episode(rng, story, where, told)`` (it tells a few sentences, updates
    each actor's place and supporting lines and returns the clauses' actors in order), then "Where
    is X?" about one of the last five clauses' actors, five times. The answer is X's place; the
    support is the lines ``told`` of X."""
    story = Story()
    where: dict[str, str] = {}
    told: dict[str, list[int]] = {}
    clauses: list[str] = []
    while story.questions < QUESTIONS_PER_STORY:
        clauses += episode(rng, story, where, told)
        actor = recent_actor(rng, clauses)
        story.ask(f"Where is {actor}? ", where[actor], told[actor])
    return story


@generator(11, "basic-coreference")
def basic_coreference(rng: random.Random) -> Story:
    """Episodes (``where_story``): a random actor moves ("Mary went to the L1.") and moves on, told
    with a pronoun ("Then she journeyed to the L2."); the support is both sentences of X's latest
    pair, in story order.
    """

    def episode(rng: random.Random, story: Story, where: dict[str, str], told: dict[str, list[int]]) -> list[str]:
        actor = rng.choice(ACTORS)
        first = elsewhere(rng, LOCATIONS, where.get(actor))
        where[actor] = elsewhere(rng, LOCATIONS, first)
        told[actor] = [story.tell(move_sentence(rng, actor, first)),
                       story.tell(afterwards_sentence(rng, PRONOUNS[actor], where[actor]))]
        return [actor, actor]

    return where_story(rng, episode)


def pair_moves(rng: random.Random, where: dict[str, str]) -> tuple[list[str], str]:
    """Two different actors, and a place neither of them is in."""
    pair = rng.sample(ACTORS, 2)
    return pair, elsewhere(rng, LOCATIONS, *(where.get(actor) for actor in pair))


@generator(12, "conjunction")
def conjunction(rng: random.Random) -> Story:
    """Episodes (``where_story``): two statements "A and B went to the L." (two random actors, a
    place neither is in); the support is the latest sentence naming X.
    """

    def episode(rng: random.Random, story: Story, where: dict[str, str], told: dict[str, list[int]]) -> list[str]:
        clauses: list[str] = []
        for _ in range(2):
            pair, location = pair_moves(rng, where)
            line = story.tell(f"{pair[0]} and {pair[1]} {rng.choice(MOVES)} the {location}.")
            for actor in pair:
                where[actor], told[actor] = location, [line]
            clauses += pair
        return clauses

    return where_story(rng, episode)


@generator(13, "compound-coreference")
def compound_coreference(rng: random.Random) -> Story:
    """Episodes (``where_story``): two random actors move together ("Mary and Daniel went to the
    L1.") and move on ("Then they journeyed to the L2."), so X is one of the pair's four clauses or
    the previous pair's last-named; the support is both sentences of X's latest pair, in story order.
    """

    def episode(rng: random.Random, story: Story, where: dict[str, str], told: dict[str, list[int]]) -> list[str]:
        pair, first = pair_moves(rng, where)
        second = elsewhere(rng, LOCATIONS, first)
        lines = [story.tell(f"{pair[0]} and {pair[1]} {rng.choice(MOVES)} the {first}."),
                 story.tell(afterwards_sentence(rng, "they", second))]
        for actor in pair:
            where[actor], told[actor] = second, lines
        return pair + pair

    return where_story(rng, episode)


# --- task 14: moves at four times of day, told out of order ----------------------------------------

Move = tuple[str, int]  # (actor, time index into TIMES)


def next_move(rng: random.Random, moves: dict[str, list[str]]) -> Move:
    """A random actor with a time of day left moves at their next time, somewhere other than their
    previous place (returning to an older one is allowed)."""
    actor = rng.choice([a for a in TOWN_ACTORS if len(moves[a]) < len(TIMES)])
    previous = moves[actor][-1] if moves[actor] else None
    moves[actor].append(elsewhere(rng, TOWN_LOCATIONS, previous))
    return actor, len(moves[actor]) - 1


def move_pair(rng: random.Random, moves: dict[str, list[str]]) -> list[Move]:
    """Two moves, as they are told: an actor who moves twice has the later move told first."""
    pair = [next_move(rng, moves), next_move(rng, moves)]
    return pair[::-1] if pair[0][0] == pair[1][0] else pair


def opening(rng: random.Random, moves: dict[str, list[str]]) -> list[Move]:
    """Pairs of moves until someone has moved twice (so a question can be asked: upstream's stories
    open with 2, 4 or 6 statements), told in shuffled order, each later-first pair kept together."""
    units: list[list[Move]] = []
    while all(len(places) < 2 for places in moves.values()):
        pair = move_pair(rng, moves)
        units += [pair] if pair[0][0] == pair[1][0] else [[move] for move in pair]
    rng.shuffle(units)
    return [move for unit in units for move in unit]


def time_sentence(rng: random.Random, actor: str, location: str, time: str) -> str:
    if rng.random() < 0.5:
        return f"{time.capitalize()} {actor} {rng.choice(MOVES)} the {location}."
    return f"{actor} {rng.choice(MOVES)} the {location} {time}."


def askable(places: list[str], later: int) -> bool:
    """Whether "before the <place at ``later``>" names that move: it exists, has one before it, and
    the actor never comes back to that place afterwards (upstream names the last visit)."""
    return 1 <= later < len(places) and places[later] not in places[later + 1:]


def time_question(rng: random.Random, told: list[Move], moves: dict[str, list[str]]) -> Move:
    """(actor, later time) for "Where was X before the L?": a move among the last six told (any
    told if none of those will do), and a question whose later or earlier move it is."""

    def options(recent: list[Move]) -> list[list[Move]]:
        questions = ([(actor, later) for later in (time, time + 1) if askable(moves[actor], later)]
                     for actor, time in recent)
        return [q for q in questions if q]

    return rng.choice(rng.choice(options(told[-RECENT_MOVES:]) or options(told)))


@generator(14, "time-reasoning")
def time_reasoning(rng: random.Random) -> Story:
    """Moves at four times of day ("Yesterday Julie went to the school." / "Julie went to the school
    this morning."). Each actor moves at yesterday, this morning, this afternoon, this evening in
    that order (never skipping one), but the story tells them out of order: an opening of 2-6
    statements, then "Where was X before the L?" after it and after each next two statements, five
    questions. The answer is X's place at the time before the move to L; the support is the move to
    L then that earlier move (upstream lists them in this order, not ascending).
    """
    story = Story()
    moves: dict[str, list[str]] = {actor: [] for actor in TOWN_ACTORS}
    line_of: dict[Move, int] = {}
    told: list[Move] = []
    while story.questions < QUESTIONS_PER_STORY:
        batch = move_pair(rng, moves) if told else opening(rng, moves)
        for actor, time in batch:
            line_of[actor, time] = story.tell(time_sentence(rng, actor, moves[actor][time], TIMES[time]))
        told += batch
        actor, later = time_question(rng, told, moves)
        story.ask(f"Where was {actor} before the {moves[actor][later]}? ", moves[actor][later - 1],
                  [line_of[actor, later], line_of[actor, later - 1]])
    return story
