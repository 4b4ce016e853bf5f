"""Module 7's pretrained model: the committed checkpoint is what its script trains, and what the notebooks load.

The checkpoint (courses/aif-foundations/source/m7-fine-tune-and-serve/digitnet.pt) is made by
courses/aif-foundations/models/pretrain_digitnet.py. Re-running the training takes a few seconds on a CPU
and must give exactly the same tensors; the notebooks' own DigitNet class must load it strictly; and the
files the learner needs (checkpoint, model card) sit in the module's source folder, which nbgrader's release
copies to the learner.
"""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch
from torch import nn

REPO = Path(__file__).resolve().parents[2]
COURSE = REPO / "courses" / "aif-foundations"
MODULE = COURSE / "source" / "m7-fine-tune-and-serve"
CHECKPOINT = MODULE / "digitnet.pt"
NOTEBOOKS = ("01-fine-tune-full-and-lora.ipynb", "02-quantise-batch-serve.ipynb")


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("pretrain_digitnet", COURSE / "models" / "pretrain_digitnet.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def committed():
    return torch.load(CHECKPOINT, map_location="cpu", weights_only=True)


def test_the_checkpoint_is_small_and_safe_to_load(committed):
    assert CHECKPOINT.stat().st_size < 1_000_000
    assert committed["format"] == "aifw-digitnet-1"
    assert committed["hidden"] == 256 and committed["classes"] == list(range(10))
    assert set(committed["state_dict"]) == {"body.0.weight", "body.0.bias", "body.2.weight", "body.2.bias",
                                            "head.weight", "head.bias"}


def test_retraining_reproduces_the_committed_tensors(script, committed):
    threads = torch.get_num_threads()
    fresh = script.pretrain()
    assert torch.get_num_threads() == threads, "pretrain() must restore the thread count it changed"
    assert not torch.are_deterministic_algorithms_enabled()
    assert script.differing_tensors(fresh["state_dict"], committed["state_dict"], atol=script.REPRODUCE_ATOL) == []
    assert fresh["pretrain_indices"].tolist() == committed["pretrain_indices"].tolist()
    assert committed["tensor_sha256"] == script.tensor_digest(committed["state_dict"])
    assert fresh["tensor_sha256"] == script.tensor_digest(fresh["state_dict"])
    assert fresh["pretrain_test_accuracy"] == committed["pretrain_test_accuracy"] > 0.9


def test_differing_tensors_names_what_changed(script, committed):
    changed = {k: v.clone() for k, v in committed["state_dict"].items()}
    changed["head.bias"][0] += 1e-7
    del changed["body.0.bias"]
    assert script.differing_tensors(committed["state_dict"], changed) == ["body.0.bias", "head.bias"]
    # within a tolerance: rounding passes, a real change does not
    assert script.differing_tensors(committed["state_dict"], changed, atol=1e-5) == ["body.0.bias"]
    changed["head.weight"][2, 3] += 1e-3
    assert script.differing_tensors(committed["state_dict"], changed, atol=1e-5) == ["body.0.bias", "head.weight"]


def test_check_mode_refuses_a_checkpoint_that_differs(script, committed, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(script, "pretrain", lambda: dict(committed))   # the re-training is proven above
    tampered = dict(committed, state_dict={k: v.clone() for k, v in committed["state_dict"].items()})
    tampered["state_dict"]["body.2.weight"][3, 4] = 0.5
    torch.save(tampered, tmp_path / "digitnet.pt")
    assert script.main(["--check", "--out", str(tmp_path / "digitnet.pt")]) == 1
    assert "body.2.weight" in capsys.readouterr().err
    assert script.main(["--check", "--out", str(tmp_path / "missing.pt")]) == 1
    assert "no checkpoint at" in capsys.readouterr().err


def test_pretraining_images_and_the_new_task_are_apart(script, committed):
    indices = committed["pretrain_indices"].tolist()
    assert len(indices) == len(set(indices)) == script.PRETRAIN_IMAGES == 900
    assert all(0 <= i < 1797 for i in indices)


@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_each_notebooks_digitnet_loads_the_checkpoint_strictly(notebook, committed):
    cells = json.loads((MODULE / notebook).read_text())["cells"]
    source = next(c["source"] for c in cells if c["cell_type"] == "code" and "class DigitNet" in c["source"])
    definition = source[source.index("class DigitNet"):source.index("\n\n\n")]
    namespace = {"nn": nn, "torch": torch}
    exec(definition, namespace)
    model = namespace["DigitNet"](committed["hidden"], len(committed["classes"]))
    model.load_state_dict(committed["state_dict"], strict=True)


def test_the_release_gives_the_learner_the_checkpoint_and_its_model_card(tmp_path):
    from aifw.courses.catalogue import find_course
    from aifw.courses.nbgrader_tools import copy_sources, generate_release, nbgrader_api

    course = find_course("aif-foundations", root=REPO / "courses")
    copy_sources(course, ["m7-fine-tune-and-serve"], tmp_path)
    release = generate_release(nbgrader_api(tmp_path), "m7-fine-tune-and-serve")
    assert (release / "digitnet.pt").read_bytes() == CHECKPOINT.read_bytes()
    card = (release / "MODEL_CARD.md").read_text()
    for fact in ("pretrain_digitnet.py", "load_digits", "BSD-3-Clause", "CC BY 4.0", "pretrain_indices"):
        assert fact in card
    assert {p.name for p in release.iterdir()} == {"digitnet.pt", "MODEL_CARD.md", *NOTEBOOKS}
