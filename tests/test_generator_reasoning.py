"""The generators of tasks 4 and 15-20, checked by solving their stories from the words alone.

Each solver below reads a question's story as a reader would (a map of rooms or shapes, who is
which species, what fits in what, who wants what) and answers the question with its supporting
line ids, knowing nothing of the generator. The same solvers reproduce the upstream files, so they
state the upstream tasks' rules: what the generated files must agree with.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Callable

import pytest

from tasks import babi, qa
from tasks.babi_generator import file_rng
from tasks.babi_generator.world import generate_file

STEPS = {"north": (0, 1), "south": (0, -1), "east": (1, 0), "west": (-1, 0),
         "above": (0, 1), "below": (0, -1), "to the right of": (1, 0), "to the left of": (-1, 0)}
LINK = re.compile(r"The (.+) is (north|south|east|west|above|below|to the right of|to the left of)(?: of)? the (.+)\.")

Links = dict[int, tuple[str, tuple[int, int], str]]  # line -> (a, step from b to a, b)
Answer = tuple[str, list[tuple[int, ...]]]  # the answer, and the supports upstream may give (usually one)


def links(q: qa.Question) -> Links:
    """Map sentences: line -> (a, step from b to a, b), for "The a is <direction> (of) the b."."""
    found = {}
    for line, sentence in zip(q.line_ids, q.sentences):
        a, direction, b = LINK.fullmatch(sentence).groups()
        found[line] = (a, STEPS[direction], b)
    return found


def link_line(found: Links, x: str, y: str) -> int:
    return next(line for line, (a, _, b) in found.items() if {a, b} == {x, y})


def positions(found: Links) -> dict[str, tuple[int, int]]:
    """Grid positions of everything on a connected map, the first place at the origin."""
    first = next(iter(found.values()))[2]
    where = {first: (0, 0)}
    while len(where) < len({p for a, _, b in found.values() for p in (a, b)}):
        for a, (dx, dy), b in found.values():
            if b in where and a not in where:
                where[a] = (where[b][0] + dx, where[b][1] + dy)
            elif a in where and b not in where:
                where[b] = (where[a][0] - dx, where[a][1] - dy)
    return where


def two_arg_relations(q: qa.Question) -> Answer:
    """Task 4: place the three rooms; "What is D of the X?" is the room one step D from X, "What is
    the X D of?" the room X is one step D from. Support: the sentence linking the two."""
    found = links(q)
    where = positions(found)
    m = re.fullmatch(r"What is (\w+) of the (\w+)\?", q.text)
    if m:
        (dx, dy), room = STEPS[m[1]], m[2]
    else:
        room, direction = re.fullmatch(r"What is the (\w+) (\w+) of\?", q.text).groups()
        dx, dy = (-d for d in STEPS[direction])
    spot = (where[room][0] + dx, where[room][1] + dy)
    answer = next(place for place, at in where.items() if at == spot)
    return answer, [(link_line(found, answer, room),)]


PLURALS = {"mice": "mouse", "sheep": "sheep", "wolves": "wolf", "cats": "cat"}


def basic_deduction(q: qa.Question) -> Answer:
    """Task 15: X is a member of a species that fears another (upstream tells the fear first).
    Support: the membership, the fear."""
    fears, members = {}, {}
    for line, sentence in zip(q.line_ids, q.sentences):
        if m := re.fullmatch(r"(\w+) are afraid of (\w+)\.", sentence):
            fears[PLURALS[m[1].lower()]] = (PLURALS[m[2]], line)
        else:
            name, species = re.fullmatch(r"(\w+) is an? (\w+)\.", sentence).groups()
            assert species in fears, (q.source, sentence)
            members[name.lower()] = (species, line)
    species, member_line = members[re.fullmatch(r"What is (\w+) afraid of\?", q.text)[1]]
    feared, fear_line = fears[species]
    return feared, [(member_line, fear_line)]


COLORS = {"gray", "white", "yellow", "green"}


def basic_induction(q: qa.Question) -> Answer:
    """Task 16: X has the colour of the animal of X's species introduced last (upstream's rule when
    animals of one species differ); one, three or four others share X's species, never none or
    two. Support: X's species, that animal's species and its colour."""
    species, colors = {}, {}
    for line, sentence in zip(q.line_ids, q.sentences):
        name, word = re.fullmatch(r"(\w+) is (?:a )?(\w+)\.", sentence).groups()
        (colors if word in COLORS else species)[name] = (word, line)
    asked = re.fullmatch(r"What color is (\w+)\?", q.text)[1]
    same_species = [name for name in colors if species[name][0] == species[asked][0]]
    assert len(same_species) in (1, 3, 4), (q.source, same_species)
    kin = max(same_species, key=lambda name: species[name][1])
    color, color_line = colors[kin]
    return color, [(species[asked][1], species[kin][1], color_line)]


RELATIONS = {"above": (1, 1), "below": (1, -1), "to the right of": (0, 1), "to the left of": (0, -1)}  # axis, sign


def positional_reasoning(q: qa.Question) -> Answer:
    """Task 17: place the three shapes; yes when the asked relation holds (a shape level with another
    is neither above nor below it). Support: the sentence naming the first shape, then the other."""
    found = links(q)
    where = positions(found)
    question = r"Is the (.+) (above|below|to the right of|to the left of) the (.+)\?"
    a, relation, b = re.fullmatch(question, q.text).groups()
    axis, sign = RELATIONS[relation]
    answer = "yes" if sign * (where[a][axis] - where[b][axis]) > 0 else "no"
    first = next(line for line, (x, _, y) in found.items() if a in (x, y))
    return answer, [(first, next(line for line in found if line != first))]


def size_reasoning(q: qa.Question) -> Answer:
    """Task 18: the question's pair is ordered by two chained statements (x > m, m > y); any such
    chain may support it, the statement about the thing asked "bigger than" or "fit in" first."""
    facts = {}
    for line, sentence in zip(q.line_ids, q.sentences):
        if m := re.fullmatch(r"The (.+) fits inside the (.+)\.", sentence):
            facts[line] = (m[2], m[1])
        else:
            facts[line] = re.fullmatch(r"The (.+) is bigger than the (.+)\.", sentence).groups()
    if m := re.fullmatch(r"Is the (.+) bigger than the (.+)\?", q.text):
        big, small = m.groups()
    else:
        small, big = re.fullmatch(r"Does the (.+) fit in the (.+)\?", q.text).groups()
    for answer, top, bottom in (("yes", big, small), ("no", small, big)):
        chains = [(i, j) for i, (x, m1) in facts.items() for j, (m2, y) in facts.items()
                  if x == top and m1 == m2 and y == bottom]
        if chains:
            return answer, [chain if big == top else chain[::-1] for chain in chains]
    raise AssertionError(f"{q.source}: no two statements order {big} and {small}")


def path_finding(q: qa.Question) -> Answer:
    """Task 19: the shortest way along the told links (not through rooms that merely share a spot),
    always two steps. Support: the links walked, in order."""
    found = links(q)
    source, target = re.fullmatch(r"How do you go from the (\w+) to the (\w+)\?", q.text).groups()
    ways = {source: ("", ())}
    frontier = [source]
    while target not in ways:
        assert frontier, (q.source, "no way")
        frontier = [nxt for room in frontier for nxt in _walk(found, room, ways)]
    path, support = ways[target]
    assert len(support) == 2, (q.source, path)
    return path.lstrip(","), [support]


def _walk(found: Links, room: str, ways: dict[str, tuple[str, tuple[int, ...]]]) -> list[str]:
    """Extend the known ways one link from ``room``; returns the newly reached rooms."""
    reached = []
    for line, (a, step, b) in found.items():
        for here, there, sign in ((b, a, 1), (a, b, -1)):
            if here == room and there not in ways:
                letter = next(word[0] for word, s in STEPS.items() if s == (sign * step[0], sign * step[1]))
                ways[there] = (f"{ways[room][0]},{letter}", ways[room][1] + (line,))
                reached.append(there)
    return reached


MOTIVES = {"hungry": ("kitchen", "apple"), "thirsty": ("kitchen", "milk"),
           "tired": ("bedroom", "pajamas"), "bored": ("garden", "football")}


def agents_motivations(q: qa.Question) -> Answer:
    """Task 20: a motive sends a person to its room for its object; the story must agree (the moves
    and gets it tells follow each person's motive, and each object is got once). Support: the motive."""
    motive, got = {}, set()
    for line, sentence in zip(q.line_ids, q.sentences):
        if m := re.fullmatch(r"(\w+) is (\w+)\.", sentence):
            motive[m[1].lower()] = (m[2], line)
        elif m := re.fullmatch(r"(\w+) \D+ the (\w+) there\.", sentence):
            assert MOTIVES[motive[m[1].lower()][0]][1] == m[2] and m[2] not in got, q.source
            got.add(m[2])
        else:
            name, room = re.fullmatch(r"(\w+) \D+ the (\w+)\.", sentence).groups()
            assert MOTIVES[motive[name.lower()][0]][0] == room, q.source
    where, who = re.fullmatch(r"(Where will|Why did) (\w+) (?:go|get)\b.*\?", q.text).groups()
    feeling, line = motive[who]
    return (MOTIVES[feeling][0] if where == "Where will" else feeling), [(line,)]


SOLVERS: dict[int, Callable[[qa.Question], Answer]] = {
    4: two_arg_relations, 15: basic_deduction, 16: basic_induction, 17: positional_reasoning,
    18: size_reasoning, 19: path_finding, 20: agents_motivations,
}


@functools.cache
def generated(task: int) -> list[qa.Question]:
    text = generate_file(task, 1000, file_rng(5, task, "train"))
    return qa.parse_babi(text.splitlines(), f"generated-qa{task}", task)


def check(task: int, questions: list[qa.Question]) -> None:
    for q in questions:
        answer, supports = SOLVERS[task](q)
        assert answer == q.answer, (q.source, q.text, answer, q.answer)
        assert q.supporting in supports, (q.source, q.text, q.supporting, supports)


@pytest.mark.parametrize("task", sorted(SOLVERS))
def test_solver_reproduces_upstream(task, upstream_en_dir):
    """The solvers are right about the real files, so they state the upstream rules."""
    check(task, babi.read_file(babi.task_file(upstream_en_dir, task, "train"), task))


@pytest.mark.parametrize("task", sorted(SOLVERS))
def test_generated_answers_and_support_solve_the_story(task):
    check(task, generated(task))


@pytest.mark.parametrize("task", sorted(SOLVERS))
def test_a_wrong_answer_or_support_is_caught(task):
    q = next(p for p in generated(task) if len(p.line_ids) > 1)
    other_answer = next(p.answer for p in generated(task) if p.answer != q.answer)
    if len(q.supporting) > 1:
        other_support = q.supporting[::-1]
    else:
        other_support = (next(line for line in q.line_ids if line not in q.supporting),)
    for answer, supporting in ((other_answer, q.supporting), (q.answer, other_support)):
        with pytest.raises(AssertionError):
            check(task, [dataclasses.replace(q, answer=answer, supporting=supporting)])
