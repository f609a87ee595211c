#!/usr/bin/env python3
"""Logits of a checkpoint computed by the training code itself, to check the converted GGUF.

    python3 reference.py DATA_DIR CHECKPOINT N_TOKENS OUT_PREFIX

Takes BOS + the first N_TOKENS - 1 tokens of the held-out split, writes
OUT_PREFIX.tokens.json (the ids) and OUT_PREFIX.logits (float32 little-endian,
n_vocab per token): the fixtures' format, read by deepmla's readLogitsFile.
"""
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from train import load_model  # noqa: E402


def main():
    data, checkpoint, n_tokens, prefix = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    vocab = json.load(open(os.path.join(data, "vocab.json")))
    heldout = np.fromfile(os.path.join(data, "heldout.u16"), dtype="<u2")
    # Skip the split's own leading BOS: the window starts inside the first document.
    tokens = [vocab["bosId"]] + [int(t) for t in heldout[1:n_tokens]]
    model, _ = load_model(checkpoint, len(vocab["tokens"]))
    model.eval()
    with torch.no_grad():
        logits = model(torch.tensor([tokens]))[0]
    with open(prefix + ".tokens.json", "w") as f:
        json.dump(tokens, f)
    logits.numpy().astype("<f4").tofile(prefix + ".logits")


if __name__ == "__main__":
    main()
