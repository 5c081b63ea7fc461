"""PyTorch + transformers reference for `empo2 bench policy`: the same model directory, the
same token ids, the same decode and training workloads. Run by scripts/bench-policy.sh."""
import sys
import time

import torch
from transformers import Qwen2ForCausalLM

model_dir = sys.argv[1]
prompt_tokens, new_tokens, train_tokens, train_steps = (int(a) for a in sys.argv[2:6])
torch.manual_seed(0)
model = Qwen2ForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32, attn_implementation="eager")
vocab = model.config.vocab_size


def token(i):
    return (i * 7919 + 13) % vocab


@torch.no_grad()
def decode(batch):
    ids = torch.tensor([[token(i + r) for i in range(prompt_tokens)] for r in range(batch)])
    out = model(input_ids=ids, use_cache=True)
    past, logits = out.past_key_values, out.logits[:, -1, :]
    start = time.perf_counter()
    for _ in range(new_tokens):
        probs = torch.softmax(logits, dim=-1)
        nxt = torch.multinomial(probs, 1)
        torch.log_softmax(logits, dim=-1).gather(1, nxt)  # behaviour log-probs, as empo2 records
        out = model(input_ids=nxt, past_key_values=past, use_cache=True)
        past, logits = out.past_key_values, out.logits[:, -1, :]
    return batch * new_tokens / (time.perf_counter() - start)


def train():
    seqs = torch.tensor([[token(i * 3 + r) for i in range(train_tokens)] for r in range(8)])
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    best = float("inf")
    for step in range(train_steps + 1):
        start = time.perf_counter()
        logits = model(input_ids=seqs).logits[:, :-1, :]
        lp = torch.log_softmax(logits, dim=-1).gather(2, seqs[:, 1:, None]).squeeze(2)
        loss = -lp.sum() / (8 * train_tokens)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step > 0:
            best = min(best, time.perf_counter() - start)
    return 8 * train_tokens / best


for batch in (1, 8):
    rate = max(decode(batch) for _ in range(3))
    print(f"| pytorch {torch.__version__} (threads {torch.get_num_threads()}): decode, batch {batch} "
          f"({new_tokens} new tokens after {prompt_tokens}) | {rate:.0f} |")
print(f"| pytorch {torch.__version__}: train step, 8 × {train_tokens} tokens "
      f"(forward + backward + AdamW) | {train():.0f} |")
