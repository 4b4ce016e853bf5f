"""Pretrain DigitNet, the small model that module m7 (fine-tune and serve) ships and fine-tunes.

DigitNet is a multi-layer perceptron (64 pixels -> 256 -> 256 -> 10 scores) trained on 900 of the 1,797
handwritten digits of scikit-learn's bundled `load_digits` data set (the first 900 of a permutation seeded
with SEED; 720 to train, 180 to test). Module m7's learners load it and meet a new task: the other 897
images as a new scanner delivers them, faded and blurred (`faded_scan` in the notebook), with only a few
labelled examples; they fine-tune it in full and with LoRA, quantise it and serve it. Nothing is
downloaded: the data ships inside scikit-learn. The checkpoint records which images it was trained on
(`pretrain_indices`), so that the new task provably uses others.

The run is reproducible: fixed seeds, one thread, deterministic algorithms. On one kind of CPU it gives the
same tensors bit for bit; across CPUs whose vector units differ (AVX2, AVX-512: torch picks its kernels by
the CPU) float rounding moves weights by about 1e-7, so a re-run is compared with the checkpoint within
REPRODUCE_ATOL (tests/unit/test_m7_pretrained.py re-runs the training and compares its tensors with the
committed checkpoint; `--check` does the same from the command line).

    python courses/aif-foundations/models/pretrain_digitnet.py            # (re)write the checkpoint
    python courses/aif-foundations/models/pretrain_digitnet.py --check    # prove the committed one

The checkpoint is a dict that `torch.load(path, weights_only=True)` reads: `format`, `hidden`, `classes`,
`state_dict` (the weights of DigitNet below), `data`, `pretrain_indices` (the images of `load_digits`
it saw, training and test), `pretrain_test_accuracy` and `tensor_sha256` (see `tensor_digest`). Its model card is MODEL_CARD.md beside it.
"""
from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

import torch
from sklearn.datasets import load_digits
from torch import nn

FORMAT = "aifw-digitnet-1"
SEED = 0
HIDDEN = 256
CLASSES = tuple(range(10))  # one score per digit; label = digit
PRETRAIN_IMAGES = 900  # the first 900 of the seeded permutation; the notebook's new task uses the rest
EPOCHS = 20
BATCH_SIZE = 64
LEARNING_RATE = 1e-3
TEST_FRACTION = 0.2
CHECKPOINT = Path(__file__).resolve().parents[1] / "source" / "m7-fine-tune-and-serve" / "digitnet.pt"


class DigitNet(nn.Module):
    """64 pixels -> `hidden` -> `hidden` -> one score per class (the notebook defines the same class)."""

    def __init__(self, hidden: int = HIDDEN, classes: int = len(CLASSES)):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU())
        self.head = nn.Linear(hidden, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def pretraining_indices() -> torch.Tensor:
    """The indices into `load_digits()` of the images pretraining uses (training and test)."""
    return torch.randperm(len(load_digits().target), generator=torch.Generator().manual_seed(SEED))[:PRETRAIN_IMAGES]


def pretraining_data() -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """(train, test) pairs of (pixels in [0, 1], label) from the pretraining images."""
    digits = load_digits()
    X = torch.tensor(digits.data / 16.0, dtype=torch.float32)
    y = torch.tensor(digits.target, dtype=torch.int64)
    chosen = pretraining_indices()
    n_test = int(len(chosen) * TEST_FRACTION)
    test, train = chosen[:n_test], chosen[n_test:]
    return (X[train], y[train]), (X[test], y[test])


def tensor_digest(state_dict: dict[str, torch.Tensor]) -> str:
    """SHA-256 over every tensor's name, dtype, shape and bytes, in name order."""
    h = hashlib.sha256()
    for name in sorted(state_dict):
        t = state_dict[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def pretrain() -> dict:
    """Train DigitNet on the pretraining images and return the checkpoint dict (deterministic on a CPU)."""
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    try:
        (X, y), (X_test, y_test) = pretraining_data()
        torch.manual_seed(SEED)
        model = DigitNet()
        optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
        shuffle = torch.Generator().manual_seed(SEED + 1)
        for _ in range(EPOCHS):
            model.train()
            for batch in torch.randperm(len(X), generator=shuffle).split(BATCH_SIZE):
                optimizer.zero_grad()
                nn.functional.cross_entropy(model(X[batch]), y[batch]).backward()
                optimizer.step()
        model.eval()
        with torch.no_grad():
            accuracy = (model(X_test).argmax(dim=1) == y_test).float().mean().item()
        state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)
    return {"format": FORMAT, "hidden": HIDDEN, "classes": list(CLASSES), "state_dict": state,
            "data": "sklearn.datasets.load_digits (pixels / 16)", "pretrain_indices": pretraining_indices(),
            "pretrain_test_accuracy": round(accuracy, 4), "tensor_sha256": tensor_digest(state)}


#: How far a re-run's weights may be from the checkpoint's: float rounding of another CPU's vector kernels
#: (measured: at most 4e-7 between AVX2 and AVX-512 machines); a real change of the training moves them by
#: orders of magnitude more.
REPRODUCE_ATOL = 1e-5


def differing_tensors(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], atol: float = 0.0) -> list[str]:
    """Names of the tensors that differ between two state dicts by more than `atol` anywhere (missing ones,
    other shapes or dtypes included); [] when they agree. `atol=0`: identical."""
    def same(x: torch.Tensor, y: torch.Tensor) -> bool:
        if x.dtype != y.dtype or x.shape != y.shape:
            return False
        return torch.equal(x, y) if atol == 0 else bool((x - y).abs().max() <= atol)
    return sorted(n for n in set(a) | set(b) if n not in a or n not in b or not same(a[n], b[n]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=CHECKPOINT, help=f"checkpoint to write (default: {CHECKPOINT})")
    parser.add_argument("--check", action="store_true",
                        help="re-train and compare with the checkpoint at --out instead of writing it")
    args = parser.parse_args(argv)
    checkpoint = pretrain()
    print(f"DigitNet pretrained on {PRETRAIN_IMAGES} digits: test accuracy {checkpoint['pretrain_test_accuracy']:.2%}, "
          f"tensor_sha256 {checkpoint['tensor_sha256']}")
    if args.check:
        if not args.out.is_file():
            print(f"no checkpoint at {args.out}: run this script without --check to write it", file=sys.stderr)
            return 1
        committed = torch.load(args.out, map_location="cpu", weights_only=True)
        differ = differing_tensors(checkpoint["state_dict"], committed["state_dict"], atol=REPRODUCE_ATOL)
        if differ:
            print(f"{args.out} differs from a fresh run by more than {REPRODUCE_ATOL:g} in: {', '.join(differ)}",
                  file=sys.stderr)
            return 1
        exact = not differing_tensors(checkpoint["state_dict"], committed["state_dict"])
        print(f"{args.out} is reproduced " + ("exactly" if exact else f"within {REPRODUCE_ATOL:g} (this CPU rounds "
                                              "differently from the one that wrote it)"))
        return 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(checkpoint, args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
