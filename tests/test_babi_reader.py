"""The bAbI reader, tokenizer, vocabulary and encoding, on the real upstream files."""

from __future__ import annotations

import time
import tracemalloc

import pytest
import torch

from memn2n_cli.errors import UserError
from tasks.babi import parse_task_ids, read_file, task_file
from tasks.qa import NIL, Vocabulary, encode, read_stories, split_validation, tokenize


def test_every_v12_en_file_holds_1000_questions(en_dir):
    for task in range(1, 21):
        for split in ("train", "test"):
            assert len(read_file(task_file(en_dir, task, split), task)) == 1000


def test_first_questions_of_task_1(upstream_en_dir):
    q = read_file(task_file(upstream_en_dir, 1, "train"), 1)
    assert q[0].story == (("mary", "moved", "to", "the", "bathroom"), ("john", "went", "to", "the", "hallway"))
    assert q[0].question == ("where", "is", "mary") and q[0].answer == "bathroom" and q[0].supporting == (1,)
    # Questions are not memories: the third question sees the 6 sentences before it (lines 1 2 4 5 7 8).
    assert q[2].line_ids == (1, 2, 4, 5, 7, 8) and q[2].supporting == (4,)
    assert q[0].source.endswith("qa1_single-supporting-fact_train.txt:3")


def test_v11_task16_has_stories_without_questions(shared_babi):
    questions = read_file(task_file(shared_babi / "v1.1" / "en", 16, "train"), 16)
    assert len(questions) == 1000
    assert max(q.story_id for q in questions) + 1 == 1428  # MANIFEST: 1428 stories for 1000 questions


def test_list_and_path_answers_are_single_answer_entries(en_dir):
    assert "n,w" in {q.answer for q in read_file(task_file(en_dir, 19, "train"), 19)}
    assert "apple,football" in {q.answer for q in read_file(task_file(en_dir, 8, "train"), 8)}


def test_vocabulary_over_all_tasks_matches_the_manifest_count(upstream_en_dir):
    questions = [q for t in range(1, 21) for s in ("train", "test") for q in read_file(task_file(upstream_en_dir, t, s), t)]
    vocab = Vocabulary.build(questions)
    assert vocab.words[0] == NIL
    # MANIFEST.md: 156 distinct words, lower-cased, '.' and '?' dropped, comma-joined answers split.
    assert len({part for w in vocab.words[1:] for part in w.split(",")}) == 156
    assert all(vocab.words[i] == a for i, a in zip(vocab.answer_word_ids(), vocab.answers))


def test_tokenizer_strips_unicode_punctuation_and_lowercases():
    assert tokenize("Mary moved to the bathroom.") == ["mary", "moved", "to", "the", "bathroom"]
    assert tokenize("Pallavi bhedia hai ?.") == ["pallavi", "bhedia", "hai"]
    assert tokenize("¿Dónde está María?") == ["dónde", "está", "maría"]


def test_hindi_and_shuffled_folders_read(shared_babi):
    hindi = read_file(task_file(shared_babi / "v1.2" / "hn", 1, "train"), 1)
    shuffled = read_file(task_file(shared_babi / "v1.2" / "shuffled", 1, "train"), 1)
    assert len(hindi) == len(shuffled) == 1000
    assert hindi[0].answer == "sayanakaksh"


def test_en_valid_file_names_are_found(shared_babi):
    assert task_file(shared_babi / "v1.2" / "en-valid", 3, "valid").name == "qa3_valid.txt"


def test_en_valid_folders_validate_on_their_own_validation_files(shared_babi, en_dir, tmp_path):
    """en-valid's qaN_train.txt leaves 100 of upstream's 1,000 training questions out, in
    qaN_valid.txt: those validate (as a jsonl folder's valid.jsonl does) and their checksums are
    recorded; a folder without them (en) holds 10% of its training stories out."""
    from memn2n_cli.qa.runs import load_splits
    from tasks import get_task

    babi, folder = get_task("babi"), shared_babi / "v1.2" / "en-valid"
    splits = load_splits(babi, folder, [1, 3], 0.1, 0)
    assert (len(splits["train"]), len(splits["valid"])) == (1800, 200)
    assert [q.source for q in splits["valid"]][::100] == [f"{folder / name}:{line}" for name, line in
                                                           (("qa1_valid.txt", 3), ("qa3_valid.txt", 25))]  # first questions
    assert [p.name for p in babi.data_files(folder, [3])] == ["qa3_train.txt", "qa3_test.txt", "qa3_valid.txt"]
    upstream = load_splits(babi, en_dir, [1], 0.1, 0)
    assert (len(upstream["train"]), len(upstream["valid"])) == (900, 100) and len(babi.data_files(en_dir, [1])) == 2


def test_encoding_puts_the_most_recent_sentence_in_slot_0_and_caps_memory(en_dir):
    questions = read_file(task_file(en_dir, 3, "train"), 3)
    vocab = Vocabulary.build(questions)
    data = encode(questions, vocab, memory_size=50)
    longest = max(range(len(questions)), key=lambda n: len(questions[n].story))
    q = questions[longest]
    assert len(q.story) > 50 and int(data.memory_size[longest]) == 50
    first_slot = data.sentences[data.memory[longest, 0]]
    assert [vocab.words[i] for i in first_slot if i] == list(q.story[-1])
    last_slot = data.sentences[data.memory[longest, 49]]
    assert [vocab.words[i] for i in last_slot if i] == list(q.story[-50])


def test_unknown_test_words_map_to_nil_and_are_counted(en_dir):
    train = read_file(task_file(en_dir, 1, "train"), 1)
    vocab = Vocabulary.build(train)
    other = read_file(task_file(en_dir, 8, "test"), 8)  # objects and lists: words and answers task 1 never uses
    data = encode(other, vocab, 50)
    assert "football" in data.unknown_words and data.unknown_words["football"] > 0
    assert int((data.answer == -1).sum()) > 0  # answers never seen in training


def test_validation_split_holds_out_whole_stories(en_dir):
    questions = read_file(task_file(en_dir, 1, "train"), 1)
    train, valid = split_validation(questions, 0.1, seed=0)
    assert {q.story_id for q in train}.isdisjoint({q.story_id for q in valid})
    assert len({q.story_id for q in valid}) == 20 and len(train) + len(valid) == 1000
    assert [q.source for q in split_validation(questions, 0.1, seed=0)[1]] == [q.source for q in valid]


@pytest.mark.parametrize("content, line, fragment", [
    (b"", None, "empty file"),
    (b"1 Mary went home.\n2 Where is Mary?\thome\t1\n3 \xff\xfe bad\n", 3, "not UTF-8"),
    (b"1 Mary went home.\nMary went home.\n", 2, "expected '<id> <sentence>'"),
    (b"1 Mary went home.\n3 John went home.\n", 2, "does not follow"),
    (b"1 Mary went home.\n2 Where is Mary?\t\t1\n", 2, "question<TAB>answer"),
    (b"1 Where is Mary?\thome\t1\n", 1, "no sentence before"),
    (b"1 Mary went home.\n2 Where is Mary?\thome\tx\n", 2, "supporting ids"),
    # A supporting id is a sentence of the story told before the question (the JSON-lines reader's rule too).
    (b"1 Mary went home.\n2 Where is Mary?\thome\t7\n", 2, "supporting id 7 is not a sentence of this story"),
    (b"1 Mary went home.\n2 Where is Mary?\thome\t2\n", 2, "supporting id 2 is not a sentence"),
    (b"1 Mary went home.\n2 Is Mary home?\tyes\t1\n3 John left.\n4 Where is Mary?\thome\t2 1\n", 4,
     "supporting id 2 is not a sentence"),
    (b"1 Mary went home.\n2 John went home.\n", None, "no questions"),
])
def test_malformed_files_name_file_and_line(tmp_path, content, line, fragment):
    path = tmp_path / "qa1_bad_train.txt"
    path.write_bytes(content)
    with pytest.raises(UserError) as error:
        read_file(path, 1)
    assert fragment in str(error.value) and error.value.line == line
    assert str(error.value).startswith(f"{path}:{line}:" if line else f"{path}:")


def test_task_ids():
    assert parse_task_ids(["all"]) == list(range(1, 21))
    assert parse_task_ids(["3", "1", "3"]) == [1, 3]
    for bad in (["0"], ["21"], ["x"]):
        with pytest.raises(UserError):
            parse_task_ids(bad)


def test_reading_a_story_is_linear_in_its_size():
    """Questions share their story's sentences: 20,000 questions after 20,000 sentences (a copy
    each took gigabytes) read in a few megabytes and seconds, and encode as the memory holds them."""
    n = 20_000
    raw = b"a b.\n" * n + b"c?\n" * n
    tracemalloc.start()
    try:
        started = time.perf_counter()
        questions = read_stories(raw, "<story>")
        elapsed, peak = time.perf_counter() - started, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(questions) == n and peak < 40e6 and elapsed < 10, (peak, elapsed)
    last = questions[-1]
    assert len(last.story) == n and last.story[-1] == ("a", "b") and last.line_ids[-2:] == (n - 1, n)
    assert last.story == tuple(last.story) and hash(last.story) == hash(tuple(last.story))
    vocab = Vocabulary([NIL, "a", "b", "c"], ["a"])
    data = encode(questions[-3:], vocab, 50)
    assert data.memory_size.tolist() == [50, 50, 50] and data.memory.shape == (3, 50)


def plain_vocabulary(questions: list) -> Vocabulary:
    """Vocabulary.build as it reads plainly, and as it was: every word of every question's story
    (each question's story is the story so far: quadratic in a story's length), every word of its
    question, and every answer."""
    answers = sorted({q.answer for q in questions})
    words = {w for q in questions for sentence in q.story for w in sentence} | {w for q in questions for w in q.question}
    return Vocabulary([NIL, *sorted(words | set(answers))], answers)


class Visited(str):
    """A word that counts the times it is hashed: each time a vocabulary takes it in."""

    visits = 0

    def __hash__(self) -> int:
        Visited.visits += 1
        return super().__hash__()


def test_building_a_vocabulary_is_linear_in_a_storys_size():
    """Issue 29: a story of n sentences, each followed by a question, has its words gone through
    once, not once per question (n²/2 sentences): the words taken in for n and for 2n, counted."""
    def visits(n: int) -> int:
        raw = b"".join(b"%d w%d went home.\n%d Where is w%d?\thome\t%d\n" % (2 * i + 1, i, 2 * i + 2, i, 2 * i + 1)
                       for i in range(n))
        questions = read_stories(raw, "<story>", tokenize=lambda text: [Visited(w) for w in tokenize(text)])
        assert len(questions) == n and len(questions[-1].story) == n
        Visited.visits = 0
        vocab = Vocabulary.build(questions)
        assert len(vocab.words) == 1 + n + 4  # nil, w0 ... w(n-1), went, home, where, is
        return Visited.visits

    small, large = visits(2_000), visits(4_000)  # a sentence and a question of 3 words each, 2,000 or 4,000 times
    # Each word taken in once, and each distinct one again for its id: some 7n. Quadratic: 3n²/2, 6,000,000 for 2,000.
    assert small < 10 * 2_000 and large < 2.1 * small, (small, large)


def test_the_vocabulary_and_training_examples_are_those_of_the_plain_reading(en_dir):
    """The same vocabulary as the plain reading's, so the same training examples: bAbI's 20 tasks
    jointly (their training stories, as `train` reads them), a story whose last sentence comes
    after its last question, and stories that share nothing (JSON lines: a story per line)."""
    from memn2n_cli.qa.runs import load_splits
    from tasks import get_task

    splits = load_splits(get_task("babi"), en_dir, list(range(1, 21)), 0.1, 0)
    vocab, plain = Vocabulary.build(splits["all_train"]), plain_vocabulary(splits["all_train"])
    assert vocab == plain
    for split in ("train", "valid"):
        ours, theirs = encode(splits[split], vocab, 50), encode(splits[split], plain, 50)
        assert all(torch.equal(getattr(ours, f), getattr(theirs, f)) for f in ("sentences", "memory", "query", "answer"))
    told_after = read_stories(b"1 Mary went home.\n2 Where is Mary?\thome\t1\n3 John went to the zoo.\n", "s.txt")
    jsonl = read_stories(b'{"story": ["Ann ran."], "question": "Who ran?", "answer": "ann"}\n' * 2, "s.jsonl")
    for questions in (told_after, jsonl, told_after + jsonl):
        assert Vocabulary.build(questions) == plain_vocabulary(questions)
    assert "zoo" not in Vocabulary.build(told_after).words  # in no question's story


def test_stories_without_questions_leave_the_vocabulary_as_the_plain_reading_does(shared_babi):
    """bAbI v1.1's task 16: 1,428 stories for 1,000 questions."""
    questions = read_file(task_file(shared_babi / "v1.1" / "en", 16, "train"), 16)
    assert Vocabulary.build(questions) == plain_vocabulary(questions)
