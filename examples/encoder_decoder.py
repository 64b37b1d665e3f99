"""An encoder-decoder from two RemBERTs: RemBertModel reads a source sentence, RemBertForCausalLM with
cross-attention writes the target while attending to the encoder's hidden states.

Both start from the bundled tiny checkpoint (the decoder's cross-attention layers are new, so they are
initialised and reported). They are trained together for a few steps on a copy task (target = source), printing
every step's loss, and the decoder then generates from the encoder's states with its key/value cache.

    python examples/encoder_decoder.py --steps 60
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent
sys.path.insert(0, str(EXAMPLES.parent))  # run from a checkout without installing
sys.path.insert(0, str(EXAMPLES))

import torch  # noqa: E402

from rembert_pt import RemBertForCausalLM, RemBertModel  # noqa: E402
from rembert_tokenize import RemBertTokenizerFast  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=5e-3)
    parser.add_argument("--sentences", type=int, default=64, help="train on the first N sentences of the data")
    parser.add_argument("--checkpoint", type=Path, default=None, help="default: the bundled tiny checkpoint")
    args = parser.parse_args()
    if args.checkpoint is None:
        from build_tiny_checkpoint import build

        args.checkpoint, _ = build()

    torch.manual_seed(0)
    tokenizer = RemBertTokenizerFast.from_pretrained(args.checkpoint)
    text = (EXAMPLES / "data" / "multilingual.txt").read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if line][: args.sentences]
    encoded = tokenizer(lines, padding=True, truncation=True, max_length=16, return_tensors="pt")
    ids, mask = encoded["input_ids"], encoded["attention_mask"]

    encoder = RemBertModel.from_pretrained(args.checkpoint)
    decoder = RemBertForCausalLM.from_pretrained(args.checkpoint, is_decoder=True, add_cross_attention=True)
    optimizer = torch.optim.AdamW([*encoder.parameters(), *decoder.parameters()], lr=args.lr)
    encoder.train()
    decoder.train()
    for step in range(args.steps):
        rows = torch.arange(step * args.batch_size, (step + 1) * args.batch_size) % len(lines)
        source, source_mask = ids[rows], mask[rows]
        states = encoder(input_ids=source, attention_mask=source_mask).last_hidden_state
        loss = decoder(
            input_ids=source,  # the target is the source: a copy task
            attention_mask=source_mask,
            encoder_hidden_states=states,
            encoder_attention_mask=source_mask,
            labels=source.masked_fill(source_mask == 0, -100),
        ).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        print(f"step {step:3d} loss {loss.item():.4f}", flush=True)

    encoder.eval()
    decoder.eval()
    sources = lines[:3]
    batch = tokenizer(sources, padding=True, truncation=True, max_length=16, return_tensors="pt")
    with torch.no_grad():
        states = encoder(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
    start = torch.full((len(sources), 1), tokenizer.cls_token_id)  # every target starts with [CLS]
    out = decoder.generate(
        start,
        encoder_hidden_states=states,
        encoder_attention_mask=batch["attention_mask"],
        max_new_tokens=16,
        eos_token_id=tokenizer.sep_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    for source, text in zip(sources, tokenizer.batch_decode(out, skip_special_tokens=True), strict=True):
        print(f"source {source!r}\n  copy {text!r}")


if __name__ == "__main__":
    main()
