"""Engines that run a prompted causal LM greedily over many prompts sharing one prefix (the
instruction and the few-shot examples), one prompt at a time: `transformers` (any model
transformers loads, GGUF files included; the path hub models and CPU latency have always
used) and `llama-cpp` (llama.cpp through llama-cpp-python: the field's CPU engine for GGUF).

Both take the same token ids (the prompt is tokenised once, by the model's transformers
tokenizer) and decode greedily (no repetition penalty, no sampling), so the same model gives
the same answers in both up to the arithmetic of its quantised weights. Both compute the
shared prefix once and reuse it: transformers keeps the prefix's key/value cache and copies it
for each prompt; llama.cpp keeps its last prompt's cache and evaluates only the tokens after
the longest common prefix. An answer ends at the model's end of turn, at `max_new_tokens`, or
at its first stop string (a blank line: the answers are `TYPE: mention` lines), which is cut.
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from tqdm import tqdm

from medistill.core.errors import TeacherSourceError

STOP = ("\n\n",)


def common_prefix(first: Sequence[int], second: Sequence[int]) -> list[int]:
    """The tokens two prompts start with."""
    return list(os.path.commonprefix([list(first), list(second)]))


def cut_at_stop(text: str, stop: Sequence[str] = STOP) -> str:
    """`text` up to its first stop string, stripped."""
    for marker in stop:
        text = text.split(marker, 1)[0]
    return text.strip()


def _progress(prompts: Sequence, engine: str):
    """A progress bar in the job's log over a long list of prompts (none for a few)."""
    return tqdm(prompts, desc=f"prompts ({engine})", disable=len(prompts) < 20, mininterval=10)


class GenerationStats:
    """Generated tokens and seconds spent, for tokens/s."""

    def __init__(self):
        self.tokens = 0
        self.seconds = 0.0

    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0


def _stop_at_strings(tokenizer, start: int):
    """Stops `generate` once the text generated after `start` holds a stop string (read from
    the decoded text, so any tokenizer works, even one that cannot write the string in one
    token or at all)."""
    from transformers import StoppingCriteria

    class StopAtStrings(StoppingCriteria):
        def __call__(self, input_ids, scores, **kwargs):
            texts = tokenizer.batch_decode(input_ids[:, start:], skip_special_tokens=True)
            stopped = [any(marker in text for marker in STOP) for text in texts]
            return torch.tensor(stopped, device=input_ids.device)

    return StopAtStrings()


class TransformersEngine:
    """Greedy `generate` at batch 1, from a copy of the shared prefix's key/value cache."""

    name = "transformers"

    def __init__(self, model, tokenizer, prefix: Sequence[int], max_new_tokens: int):
        self.model, self.tokenizer = model.eval(), tokenizer
        self.prefix = list(prefix)
        self.max_new_tokens = max_new_tokens
        self.stats = GenerationStats()
        self._cache, self._cache_device = None, None

    @torch.no_grad()
    def _prefix_cache(self, device):
        from transformers import DynamicCache

        if self._cache is None or self._cache_device != str(device):
            cache = DynamicCache(config=self.model.config)
            self.model(input_ids=torch.tensor([self.prefix], device=device), cache=cache)
            self._cache, self._cache_device = cache, str(device)
        return self._cache

    @torch.no_grad()
    def complete(self, prompts: Sequence[Sequence[int]], device="cpu") -> list[str]:
        self.model.to(device)
        answers = []
        for ids in _progress(prompts, self.name):
            began = time.perf_counter()
            prefix = list(ids[: len(self.prefix)])
            shares_prefix = self.prefix and len(ids) > len(self.prefix) and prefix == self.prefix
            cache = copy.deepcopy(self._prefix_cache(device)) if shares_prefix else None
            generated = self.model.generate(
                input_ids=torch.tensor([list(ids)], device=device),
                attention_mask=torch.ones(1, len(ids), dtype=torch.long, device=device),
                cache=cache,
                max_new_tokens=self.max_new_tokens,
                do_sample=False,
                stopping_criteria=[_stop_at_strings(self.tokenizer, len(ids))],
                pad_token_id=self.tokenizer.pad_token_id or self.tokenizer.eos_token_id,
            )[0, len(ids) :]
            self.stats.tokens += len(generated)
            self.stats.seconds += time.perf_counter() - began
            answers.append(cut_at_stop(self.tokenizer.decode(generated, skip_special_tokens=True)))
        return answers


@torch.no_grad()
def batched_greedy(
    model,
    tokenizer,
    prompts: Sequence[Sequence[int]],
    max_new_tokens: int,
    batch_size: int,
    device="cpu",
    stats: GenerationStats | None = None,
) -> list[str]:
    """Greedy answers of a causal LM whose prompts share no long prefix (a tagger fine-tuned to
    answer a bare sentence), `batch_size` at a time: sorted by length and left-padded, so a
    batch wastes little padding and every row's next token comes from its last position."""
    model.eval().to(device)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    answers: list[str] = [""] * len(prompts)
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    for indices in _progress(batches, "transformers, batched"):
        began = time.perf_counter()
        width = max(len(prompts[i]) for i in indices)
        input_ids = torch.full((len(indices), width), pad, dtype=torch.long)
        attention_mask = torch.zeros((len(indices), width), dtype=torch.long)
        for row, index in enumerate(indices):
            ids = list(prompts[index])
            input_ids[row, width - len(ids) :] = torch.tensor(ids)
            attention_mask[row, width - len(ids) :] = 1
        generated = model.generate(
            input_ids=input_ids.to(device),
            attention_mask=attention_mask.to(device),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            stopping_criteria=[_stop_at_strings(tokenizer, width)],
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=pad,
        )[:, width:]
        for row, index in enumerate(indices):
            tokens = generated[row]
            if stats is not None:
                stats.tokens += int((tokens != pad).sum())
            answers[index] = cut_at_stop(tokenizer.decode(tokens, skip_special_tokens=True))
        if stats is not None:
            stats.seconds += time.perf_counter() - began
    return answers


# A llama.cpp build for another CPU dies with SIGILL or a protection fault on its first token
# (e.g. a native build that uses AMX); a child process finds out without killing the job.
_PROBE = (
    "import sys; from llama_cpp import Llama; "
    "Llama(model_path=sys.argv[1], n_ctx=64, verbose=False).create_completion('a', max_tokens=1)"
)
LLAMA_CPP_BUILD = (
    'CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON" '
    "pip install --no-cache-dir --force-reinstall llama-cpp-python==0.3.36"
)


def check_llama_cpp(gguf_path: Path) -> None:
    """Generate one token in a child process; a crash becomes an error that says how to
    rebuild llama-cpp-python for this CPU."""
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        raise TeacherSourceError(
            "generation.engine is 'llama-cpp' but llama-cpp-python is not installed; run "
            f"`{LLAMA_CPP_BUILD}` (README: prompted LLMs), or use engine: transformers"
        ) from None
    probe = subprocess.run(
        [sys.executable, "-c", _PROBE, str(gguf_path)], capture_output=True, text=True
    )
    if probe.returncode != 0:
        how = f"died with signal {-probe.returncode}" if probe.returncode < 0 else "failed"
        raise TeacherSourceError(
            f"llama.cpp {how} generating one token of {gguf_path.name} (its build does not run "
            f"on this CPU: a native build may use instructions, such as AMX, that crash here); "
            f"rebuild it without native flags: `{LLAMA_CPP_BUILD}` "
            f"(add -DGGML_AVX512=ON where the CPU has AVX-512). {probe.stderr.strip()[-300:]}"
        )


class LlamaCppEngine:
    """llama.cpp's greedy completion of token ids; the previous prompt's cache is kept, so
    only the tokens after the shared prefix are evaluated for each new prompt."""

    name = "llama-cpp"

    def __init__(self, gguf_path: Path, context: int, threads: int, max_new_tokens: int):
        check_llama_cpp(gguf_path)  # before the import: it says how to install a missing one
        from llama_cpp import Llama

        self.max_new_tokens = max_new_tokens
        self.stats = GenerationStats()
        self.llama = Llama(
            model_path=str(gguf_path), n_ctx=context, n_threads=threads, seed=0, verbose=False
        )

    def set_threads(self, threads: int) -> None:
        """Run on `threads` CPU threads from now on (latency is timed on fewer)."""
        self.llama.n_threads = self.llama.n_threads_batch = threads
        self.llama.context_params.n_threads = self.llama.context_params.n_threads_batch = threads
        self.llama._ctx.set_n_threads(threads, threads)  # noqa: SLF001 (no public setter)

    def complete(self, prompts: Sequence[Sequence[int]], device="cpu") -> list[str]:
        answers = []
        for ids in _progress(prompts, self.name):
            began = time.perf_counter()
            result = self.llama.create_completion(
                prompt=list(ids),
                max_tokens=self.max_new_tokens,
                temperature=0.0,
                top_k=1,
                repeat_penalty=1.0,
                stop=list(STOP),
            )
            self.stats.tokens += result["usage"]["completion_tokens"]
            self.stats.seconds += time.perf_counter() - began
            answers.append(cut_at_stop(result["choices"][0]["text"]))
        return answers
