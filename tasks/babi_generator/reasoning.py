"""Tasks about static relations and reasoning: 4, 15, 16, 17, 18, 19, 20.

Upstream builds these stories from a few random habits, reproduced here because a model learns
from them (where the supporting facts sit in the story, which words start a sentence):

- maps (tasks 4, 17, 19) are told link by link: pick a random place, then a random neighbour of
  it, and tell that link the first time it comes up (``narrate_links``); links of well-connected
  places come up late, and which end is the sentence's subject depends on who was picked;
- several actors acting in turn (tasks 16, 20) take turns at random among those with something
  left to do (``take_turns``).

Statistics quoted in the docstrings were measured on the upstream v1.2 training files.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence

from tasks.babi_generator.world import LOCATIONS, Story, generator, move_sentence

Step = tuple[int, int]  # one grid step (dx, dy); y grows northwards
STEPS: tuple[Step, ...] = ((0, 1), (0, -1), (1, 0), (-1, 0))
COMPASS = {(0, 1): "north", (0, -1): "south", (1, 0): "east", (-1, 0): "west"}
PLACEMENT = {(0, 1): "above", (0, -1): "below", (1, 0): "to the right of", (-1, 0): "to the left of"}


def step_between(positions: dict[str, Step], a: str, b: str) -> Step:
    """Where ``a`` lies seen from ``b``, as a grid step (the two are neighbours)."""
    return positions[a][0] - positions[b][0], positions[a][1] - positions[b][1]


def back(step: Step) -> Step:
    return -step[0], -step[1]


Link = tuple[str, str]


def narrate_links(rng: random.Random, links: Sequence[Link], picked_is_subject: bool) -> list[Link]:
    """The links of a map as upstream tells them: (subject, object) pairs in telling order.

    Upstream picks a random place and a random neighbour of it, and tells their link the first
    time it comes up, with the picked place as the sentence's subject (tasks 4, 19) or its object
    (task 17). A place with many neighbours is rarely the one whose link comes up, so the links
    between hubs come last and a leaf is usually the subject (or the object).
    """
    neighbours: dict[str, list[str]] = {}
    for a, b in links:
        neighbours.setdefault(a, []).append(b)
        neighbours.setdefault(b, []).append(a)
    places = list(neighbours)
    told: list[Link] = []
    seen: set[frozenset[str]] = set()
    while len(told) < len(links):
        picked = rng.choice(places)
        other = rng.choice(neighbours[picked])
        if frozenset((picked, other)) not in seen:
            seen.add(frozenset((picked, other)))
            told.append((picked, other) if picked_is_subject else (other, picked))
    return told


def take_turns(rng: random.Random, plans: dict[str, Sequence[str]]) -> Iterator[tuple[str, str]]:
    """Each actor's plan, step by step: (actor, step), a uniformly random actor with steps left at a time."""
    left = {actor: list(plan) for actor, plan in plans.items()}
    while ready := [actor for actor, steps in left.items() if steps]:
        actor = rng.choice(ready)
        yield actor, left[actor].pop(0)


def line_of(told: list[Link], place: str, other: str) -> int:
    """The line id of the link between two places, in a story that starts with the told links."""
    return next(i for i, link in enumerate(told, 1) if set(link) == {place, other})


# --- task 4 -------------------------------------------------------------------------------------


@generator(4, "two-arg-relations")
def two_arg_relations(rng: random.Random) -> Story:
    """Three rooms in a row (north-south or east-west), two sentences linking them, one question.

    "The office is north of the kitchen. The garden is south of the kitchen. What is north of the
    kitchen?  office". The question restates one of the two sentences, asking for its subject:
    "What is north of the kitchen?" or, turned round, "What is the kitchen south of?" (the kitchen
    is the object of "The office is north of the kitchen"); the support is that sentence. The
    middle room is the subject of a third of the sentences.
    """
    rooms = rng.sample(LOCATIONS, 3)
    step = rng.choice(STEPS)
    positions = {room: (i * step[0], i * step[1]) for i, room in enumerate(rooms)}
    story = Story()
    told = narrate_links(rng, [(rooms[0], rooms[1]), (rooms[1], rooms[2])], picked_is_subject=True)
    for subject, obj in told:
        story.tell(f"The {subject} is {COMPASS[step_between(positions, subject, obj)]} of the {obj}.")
    line = rng.randrange(len(told))
    subject, obj = told[line]
    seen_from_obj = step_between(positions, subject, obj)
    if rng.random() < 0.5:
        story.ask(f"What is {COMPASS[seen_from_obj]} of the {obj}?", subject, [line + 1])
    else:
        story.ask(f"What is the {obj} {COMPASS[back(seen_from_obj)]} of?", subject, [line + 1])
    return story


# --- task 15 ------------------------------------------------------------------------------------

SPECIES_15 = {"mouse": "mice", "sheep": "sheep", "wolf": "wolves", "cat": "cats"}
NAMES_15 = ("Gertrude", "Winona", "Jessica", "Emily")


@generator(15, "basic-deduction")
def basic_deduction(rng: random.Random) -> Story:
    """Four fears ("Mice are afraid of wolves.") and four memberships ("Gertrude is a mouse."),
    then four questions "What is gertrude afraid of?  wolf" about random members (lower-case name).

    Upstream draws a random (species, name) pair at each step: a species not yet described gets its
    fear (another species), else a name not yet placed joins that species. So the story opens with
    a fear, a name only joins a species described before it, and fears thin out as the story goes.
    Support: the membership, then the fear.
    """
    story = Story()
    fears: dict[str, tuple[str, int]] = {}  # species -> (feared species, line)
    members: dict[str, tuple[str, int]] = {}  # name -> (species, line)
    while len(fears) + len(members) < len(SPECIES_15) + len(NAMES_15):
        species, name = rng.choice(list(SPECIES_15)), rng.choice(NAMES_15)
        if species not in fears:
            feared = rng.choice([other for other in SPECIES_15 if other != species])
            line = story.tell(f"{SPECIES_15[species].capitalize()} are afraid of {SPECIES_15[feared]}.")
            fears[species] = (feared, line)
        elif name not in members:
            members[name] = (species, story.tell(f"{name} is a {species}."))
    for _ in range(4):
        name = rng.choice(NAMES_15)
        species, member_line = members[name]
        feared, fear_line = fears[species]
        story.ask(f"What is {name.lower()} afraid of?", feared, [member_line, fear_line])
    return story


# --- task 16 ------------------------------------------------------------------------------------

SPECIES_16 = ("swan", "lion", "frog", "rhino")
COLORS = ("gray", "white", "yellow", "green")
NAMES_16 = ("Lily", "Bernhard", "Greg", "Julius", "Brian")


def species_for(rng: random.Random, asked: str) -> dict[str, str]:
    """Random species for the five animals, such that the one asked about shares its species with
    one, three or four others: upstream never asks about an animal alone of its kind, nor about one
    whose kind two others share."""
    while True:
        species = {name: rng.choice(SPECIES_16) for name in NAMES_16}
        kin = sum(species[name] == species[asked] for name in NAMES_16 if name != asked)
        if kin in (1, 3, 4):
            return species


@generator(16, "basic-induction")
def basic_induction(rng: random.Random) -> Story:
    """Five animals, each "Lily is a frog." then later "Lily is green.", the last colour withheld:
    "What color is Greg?  green". One question a story.

    The statements come in random turns; the animal whose colour would come last is asked about.
    An animal's colour copies, half the time, the colour of the last animal of its species coloured
    before it, and is random otherwise, so animals of one species may differ. The answer is the
    colour of the animal of the same species introduced last; support: the asked animal's species,
    then that animal's species and colour.
    """
    turns = list(take_turns(rng, {name: ("species", "color") for name in NAMES_16}))
    asked = turns[-1][0]
    species = species_for(rng, asked)
    story = Story()
    introduced: dict[str, int] = {}  # name -> line of its species
    colored: dict[str, tuple[str, int]] = {}  # name -> (colour, line)
    last_color: dict[str, str] = {}  # species -> colour of the last animal of it coloured
    for name, step in turns[:-1]:
        if step == "species":
            introduced[name] = story.tell(f"{name} is a {species[name]}.")
            continue
        kind = species[name]
        color = last_color[kind] if kind in last_color and rng.random() < 0.5 else rng.choice(COLORS)
        last_color[kind] = color
        colored[name] = (color, story.tell(f"{name} is {color}."))
    kin = max((name for name in colored if species[name] == species[asked]), key=introduced.__getitem__)
    color, color_line = colored[kin]
    story.ask(f"What color is {asked}?", color, [introduced[asked], introduced[kin], color_line])
    return story


# --- task 17 ------------------------------------------------------------------------------------

SHAPES = ("triangle", "red square", "blue square", "yellow square", "pink rectangle", "red sphere")


def placement_question(rng: random.Random, positions: dict[str, Step], a: str, b: str) -> tuple[str, str]:
    """A yes/no question placing ``a`` relative to ``b``: the answer is drawn first (yes or no, even
    odds), then a relation with that truth, so straight above-below pairs get "is it to the left of"
    questions (answered no) as upstream does. Returns (relation words, answer)."""
    (ax, ay), (bx, by) = positions[a], positions[b]
    truth = {"above": ay > by, "below": ay < by, "to the right of": ax > bx, "to the left of": ax < bx}
    answer = rng.choice(("yes", "no"))
    relation = rng.choice([words for words, holds in truth.items() if holds == (answer == "yes")])
    return relation, answer


@generator(17, "positional-reasoning")
def positional_reasoning(rng: random.Random) -> Story:
    """Three shapes in a bent or straight row, two sentences placing each end next to the middle
    one, eight yes/no questions placing one end relative to the other.

    "The triangle is above the pink rectangle. The blue square is to the left of the triangle.
    Is the pink rectangle to the right of the blue square?  yes". The row turns at the middle shape
    two times in three. Support: the sentence naming the question's first shape, then the other.
    """
    shapes = rng.sample(SHAPES, 3)
    first = rng.choice(STEPS)
    second = rng.choice([step for step in STEPS if step != back(first)])
    positions = {shapes[0]: (0, 0), shapes[1]: first, shapes[2]: (first[0] + second[0], first[1] + second[1])}
    story = Story()
    told = narrate_links(rng, [(shapes[0], shapes[1]), (shapes[1], shapes[2])], picked_is_subject=False)
    for subject, obj in told:
        story.tell(f"The {subject} is {PLACEMENT[step_between(positions, subject, obj)]} the {obj}.")
    for _ in range(8):
        a, b = rng.sample([shapes[0], shapes[2]], 2)
        relation, answer = placement_question(rng, positions, a, b)
        story.ask(f"Is the {a} {relation} the {b}?", answer, [line_of(told, a, shapes[1]), line_of(told, b, shapes[1])])
    return story


# --- task 18 ------------------------------------------------------------------------------------

SMALL_THINGS = ("chocolate", "box of chocolates")  # always the smallest, in this order
CONTAINERS = ("box", "chest", "suitcase", "container")  # their order is new each story
HUB_SHARE = 0.8  # share of questions upstream asks about a chain through its hub statement

Chain = tuple[int, int]  # line ids: (top is bigger than middle), (middle is bigger than bottom)


def size_chains(facts: dict[int, tuple[str, str]]) -> list[Chain]:
    """Every two statements that chain: the first's smaller thing is the second's bigger one."""
    return [(i, j) for i, (_, middle) in facts.items() for j, (top, _) in facts.items() if top == middle]


def size_question(rng: random.Random, top: str, bottom: str) -> tuple[str, str, bool]:
    """One of the four questions on ``top`` > ``bottom``: (text, answer, whether the support starts
    with the statement about ``top``: upstream starts with the thing asked "bigger than" or "fit in")."""
    return rng.choice((
        (f"Is the {top} bigger than the {bottom}?", "yes", True),
        (f"Is the {bottom} bigger than the {top}?", "no", False),
        (f"Does the {bottom} fit in the {top}?", "yes", True),
        (f"Does the {top} fit in the {bottom}?", "no", False),
    ))


@generator(18, "size-reasoning")
def size_reasoning(rng: random.Random) -> Story:
    """Five true size statements about random pairs of six things ("The chocolate fits inside the
    box." / "The suitcase is bigger than the chest."), five more while no two of them chain, then
    five yes/no questions on a pair two chained statements order ("Does the chocolate fit in the
    suitcase?"), the two statements as support.

    Upstream asks mostly about chains through the earliest statement that starts or ends one (the
    "hub"; 87% of its questions involve it), so a story's questions repeat a pair or two.
    """
    order = {thing: rank for rank, thing in enumerate(SMALL_THINGS + tuple(rng.sample(CONTAINERS, 4)))}
    story = Story()
    facts: dict[int, tuple[str, str]] = {}  # line -> (bigger, smaller)
    while not (chains := size_chains(facts)):
        for _ in range(5):
            small, big = sorted(rng.sample(list(order), 2), key=order.__getitem__)
            sentence = rng.choice((f"The {small} fits inside the {big}.", f"The {big} is bigger than the {small}."))
            facts[story.tell(sentence)] = (big, small)
    hub = min(min(chain) for chain in chains)
    through_hub = [chain for chain in chains if hub in chain]
    for _ in range(5):
        upper, lower = rng.choice(through_hub if rng.random() < HUB_SHARE else chains)
        text, answer, top_first = size_question(rng, facts[upper][0], facts[lower][1])
        story.ask(text, answer, [upper, lower] if top_first else [lower, upper])
    return story


# --- task 19 ------------------------------------------------------------------------------------


@generator(19, "path-finding")
def path_finding(rng: random.Random) -> Story:
    """A map of all six rooms: a two-step path from a source room through a middle room to a target
    room, and three side rooms each off one of those three, in five sentences; then "How do you go
    from the kitchen to the garden?  s,e" with the path's two links as support, in path order.

    The path never turns back; the side rooms take random free sides of the path's rooms without
    further checks, so two side rooms may share a spot (7% of upstream maps), which no sentence says.
    """
    source, middle, target, *sides = rng.sample(LOCATIONS, 6)
    first = rng.choice(STEPS)
    second = rng.choice([step for step in STEPS if step != back(first)])
    positions = {source: (0, 0), middle: first, target: (first[0] + second[0], first[1] + second[1])}
    used = {(source, first), (middle, back(first)), (middle, second), (target, back(second))}
    free = [(room, step) for room in (source, middle, target) for step in STEPS if (room, step) not in used]
    links = [(source, middle), (middle, target)]
    for side, (room, step) in zip(sides, rng.sample(free, len(sides))):
        positions[side] = (positions[room][0] + step[0], positions[room][1] + step[1])
        links.append((room, side))
    story = Story()
    told = narrate_links(rng, links, picked_is_subject=True)
    for subject, obj in told:
        story.tell(f"The {subject} is {COMPASS[step_between(positions, subject, obj)]} of the {obj}.")
    path = f"{COMPASS[first][0]},{COMPASS[second][0]}"
    support = [line_of(told, source, middle), line_of(told, middle, target)]
    story.ask(f"How do you go from the {source} to the {target}?", path, support)
    return story


# --- task 20 ------------------------------------------------------------------------------------

NAMES_20 = ("Jason", "Antoine", "Sumit", "Yann")
MOTIVES = {"hungry": ("kitchen", "apple"), "thirsty": ("kitchen", "milk"),
           "tired": ("bedroom", "pajamas"), "bored": ("garden", "football")}
GETS = ("got", "grabbed", "picked up", "took")


@generator(20, "agents-motivations")
def agents_motivations(rng: random.Random) -> Story:
    """Four people, each with a random motive, in random turns: "Sumit is tired." (asked "Where will
    sumit go?  bedroom"), "Sumit went back to the bedroom." ("Why did sumit go to the bedroom?
    tired"), "Sumit grabbed the pajamas there." ("Why did sumit get the pajamas?  tired").

    A question follows every statement, with the lower-case name; its support is the motive's line.
    Each motive has one object, so when two people share a motive only the first to get there takes
    it and the other one's story stops after the move: mostly 10 to 12 statements a story, as upstream.
    """
    motive = {name: rng.choice(list(MOTIVES)) for name in NAMES_20}
    story = Story()
    told_motive: dict[str, int] = {}
    taken: set[str] = set()
    for name, step in take_turns(rng, {name: ("feel", "go", "get") for name in NAMES_20}):
        place, thing = MOTIVES[motive[name]]
        who = name.lower()
        if step == "feel":
            told_motive[name] = story.tell(f"{name} is {motive[name]}.")
            story.ask(f"Where will {who} go?", place, [told_motive[name]])
        elif step == "go":
            story.tell(move_sentence(rng, name, place))
            story.ask(f"Why did {who} go to the {place}?", motive[name], [told_motive[name]])
        elif thing not in taken:
            taken.add(thing)
            story.tell(f"{name} {rng.choice(GETS)} the {thing} there.")
            story.ask(f"Why did {who} get the {thing}?", motive[name], [told_motive[name]])
    return story
