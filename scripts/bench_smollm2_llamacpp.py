"""llama.cpp (llama-cpp-python) reference for SmolLM2 decode: the same GGUF, a 64-token prompt,
64 sampled tokens at batch 1, 2 threads. Run by scripts/bench-policy.sh --smollm2."""
import sys
import time

from llama_cpp import Llama

path, prompt_tokens, new_tokens = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
llm = Llama(model_path=path, n_ctx=512, n_threads=2, verbose=False, seed=0)
vocab = llm.n_vocab()
prompt = [(i * 7919 + 13) % vocab for i in range(prompt_tokens)]
best = 0.0
for _ in range(3):
    llm.reset()
    llm.eval(prompt)
    start = time.perf_counter()
    for _ in range(new_tokens):
        token = llm.sample(temp=1.0, top_p=1.0, top_k=0)
        llm.eval([token])
    best = max(best, new_tokens / (time.perf_counter() - start))
print(f"| llama.cpp (llama-cpp-python, Q4_1, 2 threads): decode, batch 1 ({new_tokens} new tokens after {prompt_tokens}) | {best:.0f} |")
