"""PyTorch + transformers reference for `empo2 bench policy`: the same model directory, the
same token ids, the same decode and training workloads, on the same device and dtype. Run by
scripts/bench-policy.sh (CPU, f32) and scripts/gpu-check.sh (CUDA, bf16)."""
import argparse
import time

import torch
from transformers import AutoModelForCausalLM

parser = argparse.ArgumentParser()
parser.add_argument("model_dir")
parser.add_argument("prompt_tokens", type=int)
parser.add_argument("new_tokens", type=int)
parser.add_argument("train_tokens", type=int)
parser.add_argument("train_steps", type=int)
parser.add_argument("--device", default="cpu")
parser.add_argument("--dtype", default="f32", choices=["f32", "bf16", "f16"])
parser.add_argument("--batches", default="1,8")
args = parser.parse_args()
dtype = {"f32": torch.float32, "bf16": torch.bfloat16, "f16": torch.float16}[args.dtype]
device = torch.device(args.device)
torch.manual_seed(0)
model = AutoModelForCausalLM.from_pretrained(
    args.model_dir, dtype=dtype, attn_implementation="eager"
).to(device)
vocab = model.config.vocab_size
label = f"pytorch {torch.__version__} ({args.device} {args.dtype}, eager"
label += f", threads {torch.get_num_threads()})" if device.type == "cpu" else ")"


def sync():
    if device.type == "cuda":
        torch.cuda.synchronize()


def token(i):
    return (i * 7919 + 13) % vocab


@torch.no_grad()
def decode(batch):
    ids = torch.tensor(
        [[token(i + r) for i in range(args.prompt_tokens)] for r in range(batch)], device=device
    )
    out = model(input_ids=ids, use_cache=True)
    past, logits = out.past_key_values, out.logits[:, -1, :].float()
    sync()
    start = time.perf_counter()
    for _ in range(args.new_tokens):
        probs = torch.softmax(logits, dim=-1)
        nxt = torch.multinomial(probs, 1)
        torch.log_softmax(logits, dim=-1).gather(1, nxt).cpu()  # behaviour log-probs, as empo2 records
        out = model(input_ids=nxt, past_key_values=past, use_cache=True)
        past, logits = out.past_key_values, out.logits[:, -1, :].float()
    sync()
    return batch * args.new_tokens / (time.perf_counter() - start)


def train():
    seqs = torch.tensor(
        [[token(i * 3 + r) for i in range(args.train_tokens)] for r in range(8)], device=device
    )
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    best = float("inf")
    for step in range(args.train_steps + 1):
        sync()
        start = time.perf_counter()
        logits = model(input_ids=seqs).logits[:, :-1, :].float()
        lp = torch.log_softmax(logits, dim=-1).gather(2, seqs[:, 1:, None]).squeeze(2)
        loss = -lp.sum() / (8 * args.train_tokens)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sync()
        if step > 0:
            best = min(best, time.perf_counter() - start)
    return 8 * args.train_tokens / best


for batch in (int(b) for b in args.batches.split(",")):
    rate = max(decode(batch) for _ in range(3))
    print(f"| {label}: decode, batch {batch} "
          f"({args.new_tokens} new tokens after {args.prompt_tokens}) | {rate:.0f} |")
if args.train_steps > 0:
    print(f"| {label}: train step, 8 × {args.train_tokens} tokens "
          f"(forward + backward + AdamW) | {train():.0f} |")
