"""bAbI tasks 9-14 (narrative variants): independent solvers read each generated story and must find
the generator's answer and supporting facts from the sentences alone."""

from __future__ import annotations

from collections import Counter

import pytest

from tasks import babi, qa
from tasks.babi_generator import file_rng
from tasks.babi_generator.world import generate_file

FEMALE, MALE = {"mary", "sandra"}, {"john", "daniel"}
TIMES = ("yesterday", "morning", "afternoon", "evening")


def generated(task: int, questions: int = 1000) -> list[qa.Question]:
    text = generate_file(task, questions, file_rng(5, task, "train"))
    return qa.parse_babi(text.splitlines(), f"generated-qa{task}", task)


def latest_facts(q: qa.Question) -> dict[str, tuple[int, str, tuple[str, ...]]]:
    """Tasks 9 and 10: actor -> (line id, "at" / "not" / "either", places) of the last sentence about them."""
    facts = {}
    for line_id, words in zip(q.line_ids, q.story):
        if "either" in words:
            facts[words[0]] = (line_id, "either", (words[5], words[-1]))
        elif "not" in words or "longer" in words:
            facts[words[0]] = (line_id, "not", (words[-1],))
        else:
            facts[words[0]] = (line_id, "at", (words[-1],))
    return facts


def solve_yes_no(q: qa.Question) -> tuple[str, list[int]]:
    _, actor, _, _, place = q.question
    line_id, kind, places = latest_facts(q)[actor]
    if kind == "not":
        assert place in places, (q.source, "asked about a place the story never ruled out")
        return "no", [line_id]
    if place not in places:
        return "no", [line_id]
    return ("yes" if kind == "at" else "maybe"), [line_id]


@pytest.mark.parametrize("task, answers", [(9, {"yes", "no"}), (10, {"yes", "no", "maybe"})])
def test_yes_no_tasks_answer_from_the_latest_fact_about_the_actor(task, answers):
    made = generated(task)
    for q in made:
        assert (q.answer, list(q.supporting)) == solve_yes_no(q), q.source
    assert {q.answer for q in made} == answers


def test_negation_tells_both_forms_and_denies_where_the_actor_was():
    """ "X is no longer in the L" follows X's last known place when there is one (upstream's 9 of 10)."""
    forms, denied_last_place = Counter(), Counter()
    for q in generated(9, 300):
        where = {}
        for words in q.story:
            if "not" in words or "longer" in words:
                forms["longer" if "longer" in words else "not"] += 1
                if words[0] in where:
                    denied_last_place[words[-1] == where.pop(words[0])] += 1
            else:
                where[words[0]] = words[-1]
    assert forms["longer"] > 0 and forms["not"] > 0
    assert denied_last_place[False] == 0 < denied_last_place[True]


def solve_coreference(q: qa.Question) -> tuple[str, list[int]]:
    """Tasks 11-13: a named subject ("Mary", "Mary and Daniel") starts an episode; "he", "she" or
    "they" continues the previous sentence's. The answer is the last place of the asked actor's
    latest episode, the support that episode's sentences."""
    actor = q.question[-1]
    where, episode, subject = {}, {}, ()
    for line_id, words in zip(q.line_ids, q.story):
        named = tuple(w for w in words if w in FEMALE | MALE)
        if named:
            subject = named
            for person in subject:
                episode[person] = [line_id]
        else:
            pronoun = next(w for w in words if w in ("he", "she", "they"))
            expected = "they" if len(subject) == 2 else ("she" if subject[0] in FEMALE else "he")
            assert pronoun == expected, (q.source, words)
            for person in subject:
                episode[person].append(line_id)
        for person in subject:
            where[person] = words[-1]
    return where[actor], episode[actor]


@pytest.mark.parametrize("task, support_size", [(11, 2), (12, 1), (13, 2)])
def test_coreference_and_conjunction_answers_follow_the_subjects(task, support_size):
    for q in generated(task):
        answer, support = solve_coreference(q)
        assert (q.answer, list(q.supporting)) == (answer, support), q.source
        assert len(q.supporting) == support_size


def test_questions_are_about_someone_just_mentioned():
    """Upstream asks about an actor of the last five clauses: "A and B went ..." and "Then they ..."
    are A's and B's moves, in that order, so the fifth is the previous pair's last-named."""
    for q in generated(13, 300):
        clauses: list[str] = []
        for words in q.story:
            clauses += [w for w in words if w in FEMALE | MALE] or clauses[-2:]
        assert q.question[-1] in clauses[-5:], q.source


def parse_time_move(words: tuple[str, ...]) -> tuple[str, int, str]:
    """ "yesterday julie went to the school" / "bill moved to the park this evening" -> (actor, time, place)."""
    time = next(i for i, t in enumerate(TIMES) if t in words)
    place = words[words.index("the") + 1]
    actor = words[1] if words[0] == "yesterday" else words[2] if words[0] == "this" else words[0]
    return actor, time, place


def solve_time(q: qa.Question) -> tuple[str, list[int]]:
    """Task 14: find the actor's (latest) move to the place named, then the move just before it in time."""
    actor, place = q.question[2], q.question[-1]
    moves = {}  # time -> (place, line id)
    for line_id, words in zip(q.line_ids, q.story):
        who, time, where = parse_time_move(words)
        if who == actor:
            assert time not in moves, (q.source, "two moves at one time")
            moves[time] = (where, line_id)
    later = max(t for t, (where, _) in moves.items() if where == place)
    earlier = max(t for t in moves if t < later)
    return moves[earlier][0], [moves[later][1], moves[earlier][1]]


def test_time_answers_are_the_place_before_in_time_not_in_the_telling():
    told_later_first = 0
    for q in generated(14):
        answer, support = solve_time(q)
        assert (q.answer, list(q.supporting)) == (answer, support), q.source
        told_later_first += q.supporting[0] < q.supporting[1]
    assert 0 < told_later_first < 1000, "upstream tells the two moves in either order"


def test_time_stories_fill_each_actors_day_in_order():
    """An actor moves yesterday, then this morning, ... never skipping a time, whatever the telling order."""
    for q in generated(14, 300):
        times: dict[str, set[int]] = {}
        for words in q.story:
            actor, time, _ = parse_time_move(words)
            times.setdefault(actor, set()).add(time)
        assert all(ts == set(range(len(ts))) for ts in times.values()), q.source


@pytest.mark.parametrize("task, solve", [(9, solve_yes_no), (10, solve_yes_no), (11, solve_coreference),
                                         (12, solve_coreference), (13, solve_coreference), (14, solve_time)])
def test_the_solvers_agree_with_upstream_on_the_real_data(task, solve, upstream_en_dir):
    """The rules above are upstream's: they give the real files' answers and supporting facts."""
    for q in babi.read_file(babi.task_file(upstream_en_dir, task, "train"), task):
        assert solve(q) == (q.answer, list(q.supporting)), q.source
