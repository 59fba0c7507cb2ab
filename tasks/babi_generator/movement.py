"""Tasks about people moving between rooms and carrying objects: 1, 2, 3, 5, 6, 7, 8.

Tasks 2-8 share one simulated world (``World``): each story starts with the actors and the apple,
football and milk in hidden random rooms; every statement is one valid event of that world, drawn
by kind (move, pick up, drop, and in tasks 5 and 7 hand over) with the upstream tasks' relative
frequencies: an actor moves to another room, picks up an object lying where they stand, drops one
they carry, or hands one to somebody in the same room. A carried object goes wherever its holder goes.

Answers never come from the hidden world: the ``Record`` keeps only what the story has told, with
the line of every fact, as a reader would (an actor's room is known once they have moved), and
each question is answered from it with the supporting lines the upstream tasks give.
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from tasks.babi_generator.world import ACTORS, LOCATIONS, Story, generator, move_sentence

OBJECTS = ("apple", "football", "milk")
GIVERS = ("Bill", "Fred", "Jeff", "Mary")  # task 5's cast
GET_VERBS = ("got", "grabbed", "picked up", "took")
DROP_VERBS = ("discarded", "dropped", "left", "put down")
GIVE_VERBS = ("gave", "handed", "passed")
NUMBERS = ("none", "one", "two", "three")

# How often each kind of event is drawn, among the kinds the world allows at that moment
# (fitted to the upstream files: how often each happens given how many objects are carried).
CARRYING = {"move": 2.0, "get": 1.0, "drop": 0.85}
GIVING = {"move": 2.5, "get": 1.2, "drop": 0.85, "give": 3.5}
THERE = 0.2  # upstream ends this share of drops (and of task 3's pick-ups) with "there"
RECENT = 4  # tasks 2, 5-8 ask only about a fact at most this many statements old (one of the last five)

Question = tuple[str, str, list[int]]  # question text, answer, supporting line ids


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


# --- the shared world -------------------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    kind: str  # "move", "get", "drop" or "give"
    actor: str
    target: str  # the room moved to, or the object got, dropped or given
    recipient: str = ""  # who is given the object


class World:
    """The true state of one story: where everyone is, who holds what, where free objects lie."""

    def __init__(self, rng: random.Random, actors: tuple[str, ...], weights: dict[str, float]):
        self.actors, self.weights = actors, weights
        self.room = {actor: rng.choice(LOCATIONS) for actor in actors}
        self.holder: dict[str, str] = {}  # carried object -> its holder
        self.lies = {obj: rng.choice(LOCATIONS) for obj in OBJECTS}  # free object -> its room

    def options(self, kind: str) -> list[Event]:
        """Every event of this kind the world allows now."""
        if kind == "move":
            return [Event("move", a, room) for a in self.actors for room in LOCATIONS if room != self.room[a]]
        if kind == "get":
            return [Event("get", a, obj) for a in self.actors for obj in OBJECTS
                    if obj not in self.holder and self.lies[obj] == self.room[a]]
        if kind == "drop":
            return [Event("drop", holder, obj) for obj, holder in sorted(self.holder.items())]
        return [Event("give", giver, obj, other) for obj, giver in sorted(self.holder.items())
                for other in self.actors if other != giver and self.room[other] == self.room[giver]]

    def step(self, rng: random.Random) -> Event:
        """Draw a kind of event among those possible now, then one event of that kind, and perform it."""
        possible = {kind: self.options(kind) for kind in self.weights}
        kinds = [kind for kind in self.weights if possible[kind]]
        event = rng.choice(possible[rng.choices(kinds, [self.weights[kind] for kind in kinds])[0]])
        if event.kind == "move":
            self.room[event.actor] = event.target
        elif event.kind == "get":
            self.holder[event.target] = event.actor
        elif event.kind == "drop":
            self.lies[event.target] = self.room[self.holder.pop(event.target)]
        else:
            self.holder[event.target] = event.recipient
        return event


def sentence(rng: random.Random, event: Event, get_there: float) -> str:
    """The upstream templates: "X went back to the R.", "X picked up the O there.", "X gave the O to Y."."""
    if event.kind == "move":
        return move_sentence(rng, event.actor, event.target)
    if event.kind == "give":
        return f"{event.actor} {rng.choice(GIVE_VERBS)} the {event.target} to {event.recipient}."
    verb, there = (rng.choice(GET_VERBS), get_there) if event.kind == "get" else (rng.choice(DROP_VERBS), THERE)
    return f"{event.actor} {verb} the {event.target}{' there' if rng.random() < there else ''}."


@dataclass
class Record:
    """What the story has told so far, each fact with the line that told it."""

    moved: dict[str, tuple[str, int]] = field(default_factory=dict)  # actor -> (room, line of latest move)
    holder: dict[str, str] = field(default_factory=dict)  # object -> who holds it
    handled: dict[str, int] = field(default_factory=dict)  # object -> line of its latest get, drop or give
    left: dict[str, tuple[str, int]] = field(default_factory=dict)  # dropped object -> dropper's (room, move line)
    trail: dict[str, list[tuple[str, int]]] = field(default_factory=dict)  # object -> rooms it was in, in order
    dealings: dict[str, dict[str, list[int]]] = field(default_factory=dict)  # actor -> object -> lines
    handlers: dict[str, None] = field(default_factory=dict)  # who got, dropped or gave something, in order
    last_give: tuple[Event, int] | None = None
    said: list[int] = field(default_factory=list)  # the line of every statement

    def age(self, line: int) -> int:
        """How many statements were told after the one on this line."""
        return len(self.said) - 1 - bisect.bisect_left(self.said, line)

    def note(self, event: Event, line: int) -> None:
        self.said.append(line)
        if event.kind == "move":
            self.moved[event.actor] = (event.target, line)
            for obj, holder in self.holder.items():
                if holder == event.actor:
                    self.trail.setdefault(obj, []).append((event.target, line))
            return
        obj = event.target
        self.handled[obj] = line
        self.handlers[event.actor] = None
        self.deal(event.actor, obj, line)
        self.left.pop(obj, None)
        if event.kind == "get":
            self.holder[obj] = event.actor
            self.enter(obj, event.actor)
        elif event.kind == "drop":
            del self.holder[obj]
            if event.actor in self.moved:
                self.left[obj] = self.moved[event.actor]
        else:
            self.holder[obj] = event.recipient
            self.deal(event.recipient, obj, line)
            self.last_give = (event, line)

    def deal(self, actor: str, obj: str, line: int) -> None:
        self.dealings.setdefault(actor, {}).setdefault(obj, []).append(line)

    def enter(self, obj: str, actor: str) -> None:
        """A picked-up object is in its taker's room, when the story has said where the taker is."""
        if actor in self.moved:
            trail = self.trail.setdefault(obj, [])
            if not trail or trail[-1][0] != self.moved[actor][0]:
                trail.append(self.moved[actor])

    def carried(self, actor: str) -> list[str]:
        """What the actor holds, in the order they first handled each object."""
        return [obj for obj in self.dealings.get(actor, {}) if self.holder.get(obj) == actor]


@dataclass
class Telling:
    """One story being told: the hidden world, the record of what was said, and the narration."""

    rng: random.Random
    world: World
    get_there: float = 1.0  # share of pick-ups written "... there."
    story: Story = field(default_factory=Story)
    record: Record = field(default_factory=Record)

    def pair(self) -> None:
        """Upstream tells two statements between chances to ask."""
        for _ in range(2):
            event = self.world.step(self.rng)
            self.record.note(event, self.story.tell(sentence(self.rng, event, self.get_there)))


Askable = Callable[[Record], dict[str, Question]]  # every question the record answers now, by topic


def ask_about_recent(telling: Telling, askable: Askable, rests_on: Callable[[list[int]], int]) -> Story:
    """The rhythm of tasks 2, 7 and 8: after every pair of statements, a question about a topic
    (picked at random) whose question rests on one of the last five statements (``rests_on`` picks
    that fact among its supporting lines), if there is such a topic; five questions a story.

    Upstream asks exactly then, so a question is often asked again, unchanged, a pair later.
    """
    while telling.story.questions < 5:
        telling.pair()
        questions = askable(telling.record).values()
        recent = [question for question in questions if telling.record.age(rests_on(question[2])) <= RECENT]
        if recent:
            telling.story.ask(*telling.rng.choice(recent))
    return telling.story


# --- task 2: where is an object (its holder's move and its own pick-up or drop) ---------------


def object_rooms(record: Record) -> dict[str, Question]:
    """Objects whose room two told facts give: carried by someone who moved after picking it up,
    or dropped by someone whose room was known. Supporting facts: [pick-up or drop, that move]."""
    questions: dict[str, Question] = {}
    for obj in OBJECTS:
        place = record.left.get(obj)
        holder = record.holder.get(obj)
        if holder in record.moved and record.moved[holder][1] > record.handled[obj]:
            place = record.moved[holder]
        if place:
            questions[obj] = (f"Where is the {obj}? ", place[0], [record.handled[obj], place[1]])
    return questions


@generator(2, "two-supporting-facts")
def two_supporting_facts(rng: random.Random) -> Story:
    """Moves, pick-ups and drops; "Where is the O?" once two facts place an object; five a story.

    Asked after each pair of statements when an object so placed was picked up or dropped in the
    last five statements. The answer is the room of the object's holder (when it was dropped, the
    dropper's room then).
    """
    return ask_about_recent(Telling(rng, World(rng, ACTORS, CARRYING)), object_rooms, rests_on=lambda lines: lines[0])


# --- task 3: where was an object before a room (the moves that carried it) --------------------

# Task 3 asks about an object just dropped, or just carried into a new room (never one just picked
# up), the more often the more recent the facts the question rests on (ages in statements told since
# its earliest supporting fact); such a question sometimes names the room before the object's latest.
def dropped_odds(age: int) -> float:
    return max(0.0, 1.25 - age / 11)


def arrived_odds(age: int) -> float:
    return 0.5 if age <= 4 else 0.03 if age <= 11 else 0.0


DROPPED_STALE, ARRIVED_STALE = 0.3, 0.07
AGAIN = 0.7  # how often a question is asked again when nothing about its object changed
OLDEST = 30  # nor does upstream ask (or ask again) when its earliest fact is older than this (v1.2 en)


def fresh(record: Record, question: Question) -> bool:
    return record.age(min(question[2])) <= OLDEST


def room_before(record: Record, obj: str, arrival: int) -> Question:
    """Where the object was before its ``arrival``-th room (an index into its trail).

    Supporting facts, as upstream: [the object's latest pick-up or drop, the move into the room,
    the move into the room before].
    """
    (before, before_line), (room, line) = record.trail[obj][arrival - 1], record.trail[obj][arrival]
    return f"Where was the {obj} before the {room}? ", before, [record.handled[obj], line, before_line]


def earlier_rooms(record: Record) -> dict[str, Question]:
    """Objects carried from one room into another: where each was before the room it is in now."""
    return {obj: room_before(record, obj, -1) for obj, trail in record.trail.items() if len(trail) > 1}


def pick_room(rng: random.Random, news: list[str], record: Record) -> tuple[str, Question] | None:
    """Maybe a question about an object just dropped (first) or just carried into a room; the odds
    fall with the age of its facts. Mostly about the room the object is in; sometimes, as upstream,
    about the room it was carried into before (its latest arrival there: it has left it since)."""
    dropped = [obj for obj in news if obj not in record.holder]
    arrived = [obj for obj in news if obj in record.holder and record.trail[obj][-1][1] > record.handled[obj]]
    for candidates, odds, stale in ((dropped, dropped_odds, DROPPED_STALE), (arrived, arrived_odds, ARRIVED_STALE)):
        for obj in rng.sample(candidates, len(candidates)):
            if rng.random() < odds(record.age(min(room_before(record, obj, -1)[2]))):
                earlier = (len(record.trail[obj]) > 2 and rng.random() < stale
                           and fresh(record, room_before(record, obj, -2)))
                return obj, room_before(record, obj, -2 if earlier else -1)
    return None


@generator(3, "three-supporting-facts")
def three_supporting_facts(rng: random.Random) -> Story:
    """Moves, pick-ups and drops; "Where was the O before the R?" once a carried object changed rooms.

    Long stories: after a pair of statements that dropped an object or carried it on, sometimes a
    question (mostly when its facts are recent); right after a question, when the pair left its
    object alone, often the very same question again (upstream repeats questions this way, never
    later); never a question resting on a fact more than OLDEST statements old. The answer is the
    room the object was in before its latest arrival in R.
    """
    telling = Telling(rng, World(rng, ACTORS, CARRYING), get_there=THERE)
    before, asked = earlier_rooms(telling.record), None
    while telling.story.questions < 5:
        telling.pair()
        now = earlier_rooms(telling.record)
        news = [obj for obj in now if now[obj] != before.get(obj)]
        before, last = now, asked
        asked = pick_room(rng, news, telling.record)  # (object, question)
        if asked is None and last and last[0] in now and last[0] not in news and rng.random() < AGAIN \
                and fresh(telling.record, last[1]):
            asked = last
        if asked is not None:
            telling.story.ask(*asked[1])
    return telling.story


# --- task 5: who gave what to whom ------------------------------------------------------------

GIVE_QUESTIONS = (  # (template, the field of the give that answers it); upstream asks "what" twice as often
    ("What did {actor} give to {recipient}? ", "target"),
    ("What did {actor} give to {recipient}? ", "target"),
    ("Who did {actor} give the {target} to? ", "recipient"),
    ("Who received the {target}? ", "recipient"),
    ("Who gave the {target}? ", "actor"),
    ("Who gave the {target} to {recipient}? ", "actor"),
)


@generator(5, "three-arg-relations")
def three_arg_relations(rng: random.Random) -> Story:
    """Bill, Fred, Jeff and Mary move, pick up, drop and hand objects to each other; five questions.

    After every pair of statements while the latest hand-over is one of the last five statements,
    one question about it: its giver, object or recipient. Supporting fact: the hand-over.
    """
    telling = Telling(rng, World(rng, GIVERS, GIVING))
    while telling.story.questions < 5:
        telling.pair()
        if telling.record.last_give and telling.record.age(telling.record.last_give[1]) <= RECENT:
            give, line = telling.record.last_give
            template, answer = rng.choice(GIVE_QUESTIONS)
            question = template.format(actor=give.actor, target=give.target, recipient=give.recipient)
            telling.story.ask(question, getattr(give, answer), [line])
    return telling.story


# --- task 6: is an actor in a room ------------------------------------------------------------


@generator(6, "yes-no-questions")
def yes_no_questions(rng: random.Random) -> Story:
    """Moves, pick-ups and drops; after each pair "Is X in the R?" about someone who has just moved.

    Five questions a story, about someone whose latest move is one of the last five statements;
    half name X's room (yes), half another room (no). Supporting fact: X's latest move.
    """
    telling = Telling(rng, World(rng, ACTORS, CARRYING))
    while telling.story.questions < 5:
        telling.pair()
        moved = telling.record.moved
        recent = sorted(actor for actor, (_, line) in moved.items() if telling.record.age(line) <= RECENT)
        if recent:
            actor = rng.choice(recent)
            room, line = moved[actor]
            if rng.random() < 0.5:
                telling.story.ask(f"Is {actor} in the {room}? ", "yes", [line])
            else:
                other = rng.choice([place for place in LOCATIONS if place != room])
                telling.story.ask(f"Is {actor} in the {other}? ", "no", [line])
    return telling.story


# --- tasks 7 and 8: what an actor carries -----------------------------------------------------


def carried_counts(record: Record) -> dict[str, Question]:
    """How many objects each actor who handled one carries; supporting facts: every line where
    they got, dropped, gave or were given an object, in story order."""
    return {actor: (f"How many objects is {actor} carrying? ", NUMBERS[len(record.carried(actor))],
                    sorted(line for lines in record.dealings[actor].values() for line in lines))
            for actor in record.handlers}


def carried_lists(record: Record) -> dict[str, Question]:
    """What each actor who handled an object carries, as upstream lists it: objects in the order
    the actor first handled them ("nothing" if none); supporting facts grouped the same way."""
    return {actor: (f"What is {actor} carrying? ", ",".join(record.carried(actor)) or "nothing",
                    [line for lines in record.dealings[actor].values() for line in lines])
            for actor in record.handlers}


@generator(7, "counting")
def counting(rng: random.Random) -> Story:
    """Moves, pick-ups, drops and hand-overs; "How many objects is X carrying?"; five questions.

    Asked after each pair of statements about someone who got, dropped, gave or was given an object
    in the last five statements.
    """
    return ask_about_recent(Telling(rng, World(rng, ACTORS, GIVING)), carried_counts, rests_on=max)


@generator(8, "lists-sets")
def lists_sets(rng: random.Random) -> Story:
    """Moves, pick-ups and drops; "What is X carrying?" answered with a list; five questions.

    Same rhythm as task 7 (no hand-overs, as upstream).
    """
    return ask_about_recent(Telling(rng, World(rng, ACTORS, CARRYING)), carried_lists, rests_on=max)
