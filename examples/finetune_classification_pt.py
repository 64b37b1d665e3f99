"""Fine-tune RemBertForSequenceClassification with a plain PyTorch loop on the bundled tiny checkpoint.

The task: tell sentences written mostly in Latin letters from the others (`data/multilingual.txt`). Prints the
loss of every step and the final training accuracy.

    python examples/finetune_classification_pt.py --steps 60
    torchrun --nproc_per_node 2 examples/finetune_classification_pt.py --steps 60    # DistributedDataParallel

Under torchrun each process takes its share of every batch (gloo backend, CPU) and DistributedDataParallel
averages the gradients, so the steps are those of one process on the whole batch.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent
sys.path.insert(0, str(EXAMPLES.parent))  # run from a checkout without installing
sys.path.insert(0, str(EXAMPLES))

import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402

from rembert_pt import RemBertForSequenceClassification  # noqa: E402
from rembert_tokenize import RemBertTokenizerFast  # noqa: E402


def latin_or_not(path: Path) -> tuple[list[str], list[int]]:
    """Sentences and labels: 1 when most letters are ASCII (Latin script), else 0."""
    texts, labels = [], []
    for line in path.read_text(encoding="utf-8").splitlines():
        letters = [c for c in line if c.isalpha()]
        if letters:
            texts.append(line)
            labels.append(int(sum(c.isascii() for c in letters) > len(letters) / 2))
    return texts, labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=32, help="global batch, split across processes")
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--checkpoint", type=Path, default=None, help="default: the bundled tiny checkpoint")
    args = parser.parse_args()

    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if world > 1:
        dist.init_process_group("gloo")
    if args.batch_size % world:
        parser.error(f"--batch-size {args.batch_size} must be divisible by the {world} processes")

    if args.checkpoint is None:
        from build_tiny_checkpoint import build

        if rank == 0:
            build()
        if world > 1:
            dist.barrier()  # the others wait for the checkpoint to exist
        args.checkpoint = EXAMPLES / "tiny-rembert"

    tokenizer = RemBertTokenizerFast.from_pretrained(args.checkpoint)
    texts, labels = latin_or_not(EXAMPLES / "data" / "multilingual.txt")
    encoded = tokenizer(texts, padding=True, truncation=True, max_length=32, return_tensors="pt")
    labels = torch.tensor(labels)

    torch.manual_seed(0)  # every process draws the same head weights and the same batches
    model = RemBertForSequenceClassification.from_pretrained(args.checkpoint, num_labels=2)
    model.train()
    trained = torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model
    optimizer = torch.optim.AdamW(trained.parameters(), lr=args.lr)
    order = torch.randperm(len(texts))
    per_process = args.batch_size // world

    for step in range(args.steps):
        start = step * args.batch_size % len(texts)
        rows = order.roll(-start)[: args.batch_size][rank * per_process : (rank + 1) * per_process]
        outputs = trained(
            input_ids=encoded["input_ids"][rows],
            attention_mask=encoded["attention_mask"][rows],
            labels=labels[rows],
        )
        optimizer.zero_grad()
        outputs.loss.backward()
        optimizer.step()
        loss = outputs.loss.detach()
        if world > 1:
            dist.all_reduce(loss)
            loss /= world
        if rank == 0:
            print(f"step {step:3d} loss {loss.item():.4f}", flush=True)

    model.eval()
    with torch.no_grad():
        logits = model(input_ids=encoded["input_ids"], attention_mask=encoded["attention_mask"]).logits
    if rank == 0:
        accuracy = (logits.argmax(-1) == labels).float().mean().item()
        print(f"training accuracy {accuracy:.3f} ({len(texts)} sentences, {world} process(es))")
    if world > 1:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
