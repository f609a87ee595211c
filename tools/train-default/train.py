#!/usr/bin/env python3
"""Trains deepmla's embedded default model: a small deepseek2 (MLA + MoE) on the Brown corpus.

    python3 train.py DATA_DIR OUT.ckpt [--steps N] [--threads N]

DATA_DIR holds vocab.json, train.u16 and heldout.u16 from bpe.js. The model is
DeepSeek-V2-Lite's architecture at a small width: MLA with the real attention sizes
(kv_lora_rank 512, qk_rope_head_dim 64, qk_nope_head_dim 128, v_head_dim 128, no q_lora),
a leading dense block, then MoE blocks with softmax routing and a shared expert. The math
is the one deepmla's graph computes (lib/model/deepseek2.ts): RMSNorm, RoPE on adjacent
pairs, scale 1/sqrt(192), top-k of the softmax probabilities without renormalisation.

The checkpoint is written in GGUF orientation (shape innermost first, rows contiguous),
float32, for convert.js: b"DMLACKPT", uint64 header length, JSON header, data at 32-byte
aligned offsets.
"""
import argparse
import json
import math
import os
import struct
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

CONFIG = {
    "n_embd": 256,
    "n_head": 2,
    "n_layer": 3,
    "n_leading_dense": 1,
    "ffn_dim": 768,
    "n_expert": 4,
    "n_expert_used": 2,
    "n_expert_shared": 1,
    "expert_ffn_dim": 256,
    "kv_lora_rank": 512,
    "rope_dim": 64,
    "nope_dim": 128,
    "v_head_dim": 128,
    "rope_freq_base": 10000.0,
    "norm_eps": 1e-6,
    "context_length": 256,
}


def rms_norm(x, weight, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight


def rope_tables(n_ctx, dims, base):
    inv_freq = base ** (-torch.arange(0, dims, 2, dtype=torch.float64) / dims)
    angles = torch.arange(n_ctx, dtype=torch.float64)[:, None] * inv_freq[None, :]
    return torch.cos(angles).float(), torch.sin(angles).float()


def apply_rope(x, cos, sin):
    """x [..., T, dims]: rotates the adjacent pairs (x[2i], x[2i+1]) by position."""
    x0, x1 = x[..., 0::2], x[..., 1::2]
    out = torch.stack((x0 * cos - x1 * sin, x0 * sin + x1 * cos), dim=-1)
    return out.flatten(-2)


class Norm(nn.Module):
    def __init__(self, n, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n))
        self.eps = eps

    def forward(self, x):
        return rms_norm(x, self.weight, self.eps)


class Mla(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        h, qk = c["n_head"], c["nope_dim"] + c["rope_dim"]
        self.wq = nn.Linear(c["n_embd"], h * qk, bias=False)
        self.wkv_a = nn.Linear(c["n_embd"], c["kv_lora_rank"] + c["rope_dim"], bias=False)
        self.kv_norm = Norm(c["kv_lora_rank"], c["norm_eps"])
        self.wkv_b = nn.Linear(c["kv_lora_rank"], h * (c["nope_dim"] + c["v_head_dim"]), bias=False)
        self.wo = nn.Linear(h * c["v_head_dim"], c["n_embd"], bias=False)
        self.scale = 1 / math.sqrt(qk)

    def forward(self, x, cos, sin, mask):
        c = self.c
        B, T, _ = x.shape
        h, nope, rope, vd = c["n_head"], c["nope_dim"], c["rope_dim"], c["v_head_dim"]
        q = self.wq(x).view(B, T, h, nope + rope).transpose(1, 2)  # B h T qk
        q_nope, q_pe = q[..., :nope], apply_rope(q[..., nope:], cos, sin)
        kv_a = self.wkv_a(x)
        latent = self.kv_norm(kv_a[..., : c["kv_lora_rank"]])
        k_pe = apply_rope(kv_a[..., c["kv_lora_rank"]:], cos, sin)[:, None]  # B 1 T rope
        kv = self.wkv_b(latent).view(B, T, h, nope + vd).transpose(1, 2)
        k_nope, v = kv[..., :nope], kv[..., nope:]
        scores = (q_nope @ k_nope.transpose(-1, -2) + q_pe @ k_pe.transpose(-1, -2)) * self.scale
        probs = torch.softmax(scores + mask, dim=-1)
        out = (probs @ v).transpose(1, 2).reshape(B, T, h * vd)
        return self.wo(out)


class DenseFfn(nn.Module):
    def __init__(self, n_embd, width):
        super().__init__()
        self.gate = nn.Linear(n_embd, width, bias=False)
        self.up = nn.Linear(n_embd, width, bias=False)
        self.down = nn.Linear(width, n_embd, bias=False)

    def forward(self, x):
        return self.down(F.silu(self.gate(x)) * self.up(x))


class Moe(nn.Module):
    def __init__(self, c):
        super().__init__()
        e, d, ff = c["n_expert"], c["n_embd"], c["expert_ffn_dim"]
        self.k = c["n_expert_used"]
        self.router = nn.Parameter(torch.randn(e, d) * 0.02)
        self.gate = nn.Parameter(torch.randn(e, ff, d) * 0.02)
        self.up = nn.Parameter(torch.randn(e, ff, d) * 0.02)
        self.down = nn.Parameter(torch.randn(e, d, ff) * 0.02)
        self.shared = DenseFfn(d, ff * c["n_expert_shared"])

    def forward(self, x):
        shape = x.shape
        x = x.reshape(-1, shape[-1])
        probs = torch.softmax(x @ self.router.t(), dim=-1)
        weights, chosen = probs.topk(self.k, dim=-1)
        out = self.shared(x)
        for e in range(self.router.shape[0]):
            rows, slot = (chosen == e).nonzero(as_tuple=True)
            if rows.numel() == 0:
                continue
            xe = x[rows]
            ye = (F.silu(xe @ self.gate[e].t()) * (xe @ self.up[e].t())) @ self.down[e].t()
            out = out.index_add(0, rows, ye * weights[rows, slot, None])
        # Switch-style balance loss: fraction of routed slots per expert times its mean probability.
        load = F.one_hot(chosen, probs.shape[-1]).float().sum((0, 1)) / chosen.numel()
        self.balance_loss = probs.shape[-1] * (load * probs.mean(0)).sum()
        return out.view(shape)


class Block(nn.Module):
    def __init__(self, c, dense):
        super().__init__()
        self.attn_norm = Norm(c["n_embd"], c["norm_eps"])
        self.attn = Mla(c)
        self.ffn_norm = Norm(c["n_embd"], c["norm_eps"])
        self.ffn = DenseFfn(c["n_embd"], c["ffn_dim"]) if dense else Moe(c)

    def forward(self, x, cos, sin, mask):
        x = x + self.attn(self.attn_norm(x), cos, sin, mask)
        return x + self.ffn(self.ffn_norm(x))


class Model(nn.Module):
    def __init__(self, c, n_vocab):
        super().__init__()
        self.c = c
        self.embed = nn.Embedding(n_vocab, c["n_embd"])
        self.blocks = nn.ModuleList(Block(c, i < c["n_leading_dense"]) for i in range(c["n_layer"]))
        self.norm = Norm(c["n_embd"], c["norm_eps"])
        self.output = nn.Linear(c["n_embd"], n_vocab, bias=False)
        cos, sin = rope_tables(c["context_length"], c["rope_dim"], c["rope_freq_base"])
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)
        for name, p in self.named_parameters():
            if p.dim() >= 2:
                std = 0.02 / math.sqrt(2 * c["n_layer"]) if name.endswith(("wo.weight", "down.weight", ".down")) else 0.02
                nn.init.normal_(p, std=std)

    def forward(self, tokens):
        T = tokens.shape[1]
        mask = torch.full((T, T), float("-inf")).triu(1)
        x = self.embed(tokens)
        for block in self.blocks:
            x = block(x, self.cos[:T], self.sin[:T], mask)
        return self.output(self.norm(x))

    def balance_loss(self):
        return sum(b.ffn.balance_loss for b in self.blocks if isinstance(b.ffn, Moe))


def gguf_parameters(model):
    """(name, GGUF shape innermost first, parameter) in llama.cpp's tensor names."""
    c = model.c
    out = [("token_embd.weight", [c["n_embd"], model.embed.num_embeddings], model.embed.weight)]
    for i, b in enumerate(model.blocks):
        p = f"blk.{i}."
        lin = lambda name, layer: out.append((p + name, [layer.in_features, layer.out_features], layer.weight))
        out.append((p + "attn_norm.weight", [c["n_embd"]], b.attn_norm.weight))
        lin("attn_q.weight", b.attn.wq)
        lin("attn_kv_a_mqa.weight", b.attn.wkv_a)
        out.append((p + "attn_kv_a_norm.weight", [c["kv_lora_rank"]], b.attn.kv_norm.weight))
        lin("attn_kv_b.weight", b.attn.wkv_b)
        lin("attn_output.weight", b.attn.wo)
        out.append((p + "ffn_norm.weight", [c["n_embd"]], b.ffn_norm.weight))
        if isinstance(b.ffn, DenseFfn):
            lin("ffn_gate.weight", b.ffn.gate)
            lin("ffn_up.weight", b.ffn.up)
            lin("ffn_down.weight", b.ffn.down)
        else:
            e, ff, d = b.ffn.gate.shape
            out.append((p + "ffn_gate_inp.weight", [d, e], b.ffn.router))
            out.append((p + "ffn_gate_exps.weight", [d, ff, e], b.ffn.gate))
            out.append((p + "ffn_down_exps.weight", [ff, d, e], b.ffn.down))
            out.append((p + "ffn_up_exps.weight", [d, ff, e], b.ffn.up))
            lin("ffn_gate_shexp.weight", b.ffn.shared.gate)
            lin("ffn_down_shexp.weight", b.ffn.shared.down)
            lin("ffn_up_shexp.weight", b.ffn.shared.up)
    out.append(("output_norm.weight", [c["n_embd"]], model.norm.weight))
    out.append(("output.weight", [c["n_embd"], model.output.out_features], model.output.weight))
    return out


def read_checkpoint(path):
    """(header, {name: float32 array}) of a checkpoint written by save_checkpoint."""
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:8] != b"DMLACKPT":
        raise ValueError(f"{path}: not a deepmla training checkpoint")
    (length,) = struct.unpack("<Q", raw[8:16])
    header = json.loads(raw[16 : 16 + length])
    start = (16 + length + 31) // 32 * 32
    arrays = {}
    for info in header["tensors"]:
        n = math.prod(info["shape"])
        arrays[info["name"]] = np.frombuffer(raw, dtype="<f4", count=n, offset=start + info["offset"])
    return header, arrays


def load_model(path, n_vocab):
    header, arrays = read_checkpoint(path)
    model = Model(header["config"], n_vocab)
    with torch.no_grad():
        for name, shape, param in gguf_parameters(model):
            param.copy_(torch.from_numpy(arrays[name].copy()).view(param.shape))
    return model, header


def save_checkpoint(model, path, meta):
    tensors = [(n, shape, p.detach().float().contiguous().numpy()) for n, shape, p in gguf_parameters(model)]
    header = {"config": model.c, "meta": meta, "tensors": []}
    offset = 0
    for name, shape, array in tensors:
        assert array.size == math.prod(shape), name
        header["tensors"].append({"name": name, "shape": shape, "offset": offset})
        offset += (array.size * 4 + 31) // 32 * 32
    blob = json.dumps(header).encode()
    start = (16 + len(blob) + 31) // 32 * 32
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(b"DMLACKPT" + struct.pack("<Q", len(blob)) + blob)
        for (name, shape, array), info in zip(tensors, header["tensors"]):
            f.seek(start + info["offset"])
            f.write(array.astype("<f4").tobytes())
    os.replace(tmp, path)


def batches(tokens, bos, seq, batch, generator):
    """Random windows, each starting with BOS (as a prompt does at inference)."""
    n = len(tokens) - seq
    while True:
        starts = torch.randint(0, n, (batch,), generator=generator)
        rows = [torch.cat((torch.tensor([bos]), tokens[s : s + seq])) for s in starts.tolist()]
        window = torch.stack(rows)
        yield window[:, :-1], window[:, 1:]


@torch.no_grad()
def heldout_loss(model, tokens, bos, seq, max_windows=64):
    """Mean token NLL over consecutive BOS-led windows of held-out text."""
    model.eval()
    total, count = 0.0, 0
    for w in range(min(max_windows, len(tokens) // seq)):
        chunk = tokens[w * seq : (w + 1) * seq]
        x = torch.cat((torch.tensor([bos]), chunk[:-1]))[None]
        logits = model(x)
        total += F.cross_entropy(logits[0], chunk, reduction="sum").item()
        count += chunk.numel()
    model.train()
    return total / count


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("data")
    ap.add_argument("out")
    ap.add_argument("--steps", type=int, default=1800)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--eval-every", type=int, default=200)
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    vocab = json.load(open(os.path.join(args.data, "vocab.json")))
    load = lambda name: torch.from_numpy(np.fromfile(os.path.join(args.data, name), dtype="<u2").astype(np.int64))
    train, heldout = load("train.u16"), load("heldout.u16")
    c = CONFIG
    seq = c["context_length"]  # inputs: BOS + seq - 1 tokens
    model = Model(c, len(vocab["tokens"]))
    n_params = sum(p.numel() for p in model.parameters())
    print(f"{n_params / 1e6:.2f} M parameters, {len(train)} training tokens", flush=True)

    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.95))
    warmup = max(1, args.steps // 20)
    schedule = lambda s: min(1.0, (s + 1) / warmup) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, s / args.steps))))
    generator = torch.Generator().manual_seed(args.seed)
    data = batches(train, vocab["bosId"], seq, args.batch, generator)
    started = time.time()
    for step in range(args.steps):
        for g in opt.param_groups:
            g["lr"] = args.lr * schedule(step)
        x, y = next(data)
        logits = model(x)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        (loss + 0.01 * model.balance_loss()).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if step % 20 == 0:
            rate = (step + 1) * x.numel() / (time.time() - started)
            print(f"step {step} loss {loss.item():.3f} lr {opt.param_groups[0]['lr']:.2e} {rate:.0f} tok/s", flush=True)
        if (step + 1) % args.eval_every == 0 or step + 1 == args.steps:
            nll = heldout_loss(model, heldout, vocab["bosId"], c["context_length"])
            print(f"step {step + 1} held-out loss {nll:.3f} ppl {math.exp(nll):.1f} ({time.time() - started:.0f} s)", flush=True)
            save_checkpoint(model, args.out, {"step": step + 1, "heldout_loss": nll, "seconds": time.time() - started,
                                              "tokens_seen": (step + 1) * x.numel(), "seed": args.seed})


if __name__ == "__main__":
    main()
