"""A damaged layer hides nothing that was read before the damage, in every front end.

The images (fixtures.damaged) hold a layer of 39 files followed by a damaged header, alone
(gzip, zstd) or below a sound layer that deletes one of the 39, replaces another and adds
files. Each front end must show the 39 entries (and the merged view built from them), mark
the answer incomplete and name the layer, its digest and where the damage is.
"""

from __future__ import annotations

import json

import pytest

from fixtures.damaged import READ_BEFORE_DAMAGE, DamagedImages, push_damaged_images
from layerpeek.core.cli import main

ERROR = "bad tar header checksum at tar offset 39,936"
READ = f"({READ_BEFORE_DAMAGE} entries read)"
FILES = [f"f{i:02d}.txt" for i in range(READ_BEFORE_DAMAGE)]
UPPER = [".wh.f05.txt", "f10.txt", "etc", "etc/os-release", "new.txt"]
MERGED = sorted([*(f for f in FILES if f != "f05.txt"), "etc", "etc/os-release", "new.txt"])


@pytest.fixture(scope="module")
def damaged(plain_registry) -> DamagedImages:
    return push_damaged_images(plain_registry.url)


def run(capsys, *argv: str) -> tuple[int, str, list[str]]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err.splitlines()


def problem_line(image, layer: int = 0) -> str:
    """The start of the line every front end shows for the damaged layer."""
    return f"layer {layer} ({image.layers[layer].digest[:19]}) of "


def listed(out: str) -> list[str]:
    """Paths of ``ls`` text lines (the last word; headings start with #)."""
    return [line.rsplit(" ", 1)[-1] for line in out.splitlines() if not line.startswith("#")]


def assert_problem(problem: dict, image, host: str, layer: int = 0) -> None:
    assert problem["reference"] == image.ref(host) and problem["layer"] == layer
    assert problem["digest"] == image.layers[layer].digest
    assert problem["entries"] == READ_BEFORE_DAMAGE and problem["offset"] > 0
    message = problem["message"]
    assert ERROR in message and f"after {problem['offset']:,} bytes" in message


# -- the CLI -----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["gzip", "zstd"])
def test_ls_prints_every_entry_read_then_the_error(
    capsys, layerpeek_env, plain_registry, damaged, kind
):
    image = getattr(damaged, kind)
    status, out, err = run(capsys, "ls", image.ref(plain_registry.host))
    assert status == 1
    assert listed(out) == FILES
    [line] = [line for line in err if "error" in line]
    assert line.startswith("layerpeek: error: " + problem_line(image))
    assert ERROR in line and READ in line


@pytest.mark.parametrize("kind", ["gzip", "zstd"])
def test_ls_json_prints_the_entries_and_the_error_on_stderr(
    capsys, layerpeek_env, plain_registry, damaged, kind
):
    image = getattr(damaged, kind)
    status, out, err = run(capsys, "ls", image.ref(plain_registry.host), "--json")
    assert status == 1
    assert [json.loads(line)["path"] for line in out.splitlines()] == FILES
    assert [line for line in err if line.startswith("layerpeek: error: ")] == [
        line for line in err if ERROR in line
    ]
    assert len([line for line in err if ERROR in line]) == 1


def test_ls_of_every_layer_goes_on_past_the_damaged_one(
    capsys, layerpeek_env, plain_registry, damaged
):
    image = damaged.two_layers
    status, out, err = run(capsys, "ls", image.ref(plain_registry.host), "--json")
    assert status == 1
    lines = [json.loads(line) for line in out.splitlines()]
    assert [(e["layer"], e["path"]) for e in lines] == [
        *((0, f) for f in FILES),
        *((1, p) for p in UPPER),
    ]
    assert err[-1].startswith("layerpeek: error: " + problem_line(image, 0))


def test_ls_merged_answers_from_the_entries_read(capsys, layerpeek_env, plain_registry, damaged):
    image = damaged.two_layers
    status, out, err = run(capsys, "ls", image.ref(plain_registry.host), "--merged", "--json")
    assert status == 1
    merged = [json.loads(line) for line in out.splitlines()]
    assert [e["path"] for e in merged] == MERGED
    assert {e["path"]: e["layer"] for e in merged}["f10.txt"] == 1
    assert err[-1].startswith("layerpeek: error: " + problem_line(image)) and ERROR in err[-1]


def test_find_trace_removed_and_triage_answer_marked_incomplete(
    capsys, layerpeek_env, plain_registry, damaged
):
    image = damaged.two_layers
    ref = image.ref(plain_registry.host)
    answers_ = {}
    for name, argv in {
        "find": ["find", ref, "f1*.txt"],
        "trace": ["trace", ref, "f05.txt"],
        "removed": ["removed", ref],
        "triage": ["triage", ref],
    }.items():
        status, out, err = run(capsys, *argv, "--json")
        assert status == 1, name
        assert err[-1].startswith("layerpeek: error: " + problem_line(image)), name
        answers_[name] = json.loads(out)
    for answer in answers_.values():
        assert answer["complete"] is False
        [problem] = answer["problems"]
        assert_problem(problem, image, plain_registry.host)
    found = [(m["layer"], m["path"]) for m in answers_["find"]["matches"]]
    assert found == [(0, f"f{i}.txt") for i in range(10, 20)] + [(1, "f10.txt")]
    trace = answers_["trace"]
    assert not trace["exists"] and trace["readable_layers"] == [0]
    assert [(e["layer"], e["action"]) for e in trace["events"]] == [(0, "added"), (1, "deleted")]
    removed = {(f["path"], f["action"]) for f in answers_["removed"]["files"]}
    assert removed == {("f05.txt", "deleted"), ("f10.txt", "changed")}
    triage = answers_["triage"]
    assert triage["os"]["id"] == "damaged"
    assert triage["removed_size"] == 6 * 3 + 11 * 3


def test_text_answers_are_printed_before_the_error(capsys, layerpeek_env, plain_registry, damaged):
    image = damaged.two_layers
    status, out, err = run(capsys, "removed", image.ref(plain_registry.host))
    assert status == 1
    assert "f05.txt" in out and "2 files" in out
    assert err[-1].startswith("layerpeek: error: " + problem_line(image))
    assert err[-1].endswith("what was read before it is shown")
