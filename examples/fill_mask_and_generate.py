"""Masked-LM fill-in and causal generation with PyTorch on the bundled tiny checkpoint.

1. trains the masked LM for a few steps on `data/multilingual.txt` (15% of tokens masked), then fills in a
   [MASK];
2. loads the same weights as a causal LM (`is_decoder=True`), trains it for a few steps to predict the next
   token, then continues a left-padded tokenizer batch of prompts: greedily, with beam search, and by sampling.

Prints every step's loss. The tiny model learns little in a minute: the point is the API, not the text.

    python examples/fill_mask_and_generate.py --steps 40
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent
sys.path.insert(0, str(EXAMPLES.parent))  # run from a checkout without installing
sys.path.insert(0, str(EXAMPLES))

import torch  # noqa: E402

from rembert_pt import RemBertForCausalLM, RemBertForMaskedLM  # noqa: E402
from rembert_tokenize import RemBertTokenizerFast  # noqa: E402


def train(model: torch.nn.Module, batches, steps: int, lr: float, name: str) -> None:
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    for step in range(steps):
        loss = model(**batches(step)).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        print(f"{name} step {step:3d} loss {loss.item():.4f}", flush=True)
    model.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=40, help="training steps of each model")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--checkpoint", type=Path, default=None, help="default: the bundled tiny checkpoint")
    args = parser.parse_args()
    if args.checkpoint is None:
        from build_tiny_checkpoint import build

        args.checkpoint, _ = build()

    torch.manual_seed(0)
    tokenizer = RemBertTokenizerFast.from_pretrained(args.checkpoint)
    lines = [line for line in (EXAMPLES / "data" / "multilingual.txt").read_text(encoding="utf-8").splitlines() if line]
    encoded = tokenizer(lines, padding=True, truncation=True, max_length=32, return_tensors="pt")
    ids, mask = encoded["input_ids"], encoded["attention_mask"]
    specials = torch.tensor(tokenizer.all_special_ids)

    def rows(step: int) -> torch.Tensor:
        return torch.arange(step * args.batch_size, (step + 1) * args.batch_size) % len(lines)

    # -- 1. masked LM ----------------------------------------------------------------------------------------
    def masked_batch(step: int) -> dict[str, torch.Tensor]:
        batch_ids, batch_mask = ids[rows(step)], mask[rows(step)]
        chosen = (torch.rand(batch_ids.shape) < 0.15) & batch_mask.bool() & ~torch.isin(batch_ids, specials)
        labels = torch.where(chosen, batch_ids, -100)
        masked = torch.where(chosen, tokenizer.mask_token_id, batch_ids)
        return dict(input_ids=masked, attention_mask=batch_mask, labels=labels)

    # sparse_prediction: the loop reads only the loss, so the vocabulary head runs at the labelled positions only
    # (logits [n_labelled, vocab] instead of [batch, length, vocab]): the same loss, a fraction of the memory.
    masked_lm = RemBertForMaskedLM.from_pretrained(args.checkpoint, sparse_prediction=True)
    train(masked_lm, masked_batch, args.steps, args.lr, "mlm")

    sentence = "The quick brown fox jumps over the lazy dog, then naps under the old oak tree."
    inputs = tokenizer(sentence, return_tensors="pt")
    position = 3  # the third piece of the sentence (after [CLS])
    hidden = tokenizer.convert_ids_to_tokens(int(inputs["input_ids"][0, position]))
    inputs["input_ids"][0, position] = tokenizer.mask_token_id
    with torch.no_grad():
        logits = masked_lm(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).logits
    top = logits[0, position].softmax(-1).topk(5)
    guesses = ", ".join(
        f"{tokenizer.convert_ids_to_tokens(int(i))!r} {p:.2f}" for i, p in zip(top.indices, top.values, strict=True)
    )
    print(f"fill-in: {tokenizer.decode(inputs['input_ids'][0], skip_special_tokens=False)}")
    print(f"  hidden piece {hidden!r}; top 5: {guesses}")

    # -- 2. causal LM ----------------------------------------------------------------------------------------
    def next_token_batch(step: int) -> dict[str, torch.Tensor]:
        batch_ids, batch_mask = ids[rows(step)], mask[rows(step)]
        return dict(input_ids=batch_ids, attention_mask=batch_mask, labels=batch_ids.masked_fill(batch_mask == 0, -100))

    causal_lm = RemBertForCausalLM.from_pretrained(args.checkpoint, is_decoder=True, sparse_prediction=True)
    train(causal_lm, next_token_batch, args.steps, args.lr, "clm")

    # Prompts of different lengths, padded on the LEFT; each starts with [CLS] as the training rows did. The
    # tokenizer's batch goes to generate as it is, as with Hugging Face.
    prompts = ["The quick brown", "Кошка спит", "我们去市场"]
    left = RemBertTokenizerFast.from_pretrained(args.checkpoint, padding_side="left")
    batch = left(
        [f"{tokenizer.cls_token}{p}" for p in prompts], add_special_tokens=False, padding=True, return_tensors="pt"
    )
    for name, settings in [
        ("greedy", dict()),
        ("beam search (4 beams, no repeated bigram)", dict(num_beams=4, no_repeat_ngram_size=2)),
        ("sampled (seed 0, top_k 50, top_p 0.9)", dict(do_sample=True, top_k=50, top_p=0.9, seed=0)),
    ]:
        out = causal_lm.generate(
            **batch,
            max_new_tokens=12,
            eos_token_id=tokenizer.sep_token_id,
            pad_token_id=tokenizer.pad_token_id,
            **settings,
        )
        print(f"{name}:")
        for prompt, text in zip(prompts, tokenizer.batch_decode(out, skip_special_tokens=True), strict=True):
            print(f"  {prompt!r} -> {text!r}")


if __name__ == "__main__":
    main()
