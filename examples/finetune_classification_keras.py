"""Fine-tune TFRemBertForSequenceClassification with Keras `model.fit` on the bundled tiny checkpoint.

The task: tell sentences written mostly in Latin letters from the others (`data/multilingual.txt`). Written as a
Keras user writes it: a dataset of (inputs, labels), `compile()` with a loss and `metrics=["accuracy"]`, `fit`, and
`predict` returning the logits. Prints the loss of every step, the accuracy Keras tracked during training and the
final training accuracy.

    python examples/finetune_classification_keras.py --steps 60
    python examples/finetune_classification_keras.py --steps 60 --mirrored    # MirroredStrategy, 2 CPU devices

`--mirrored` splits this machine's CPU into 2 logical devices (before TensorFlow starts) and trains under
tf.distribute.MirroredStrategy: each device takes half of every batch and the gradients are combined.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent
sys.path.insert(0, str(EXAMPLES.parent))  # run from a checkout without installing
sys.path.insert(0, str(EXAMPLES))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


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
    parser.add_argument("--batch-size", type=int, default=32, help="global batch, split across devices")
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--mirrored", action="store_true", help="train under MirroredStrategy on 2 CPU devices")
    parser.add_argument("--checkpoint", type=Path, default=None, help="default: the bundled tiny checkpoint")
    args = parser.parse_args()

    import tensorflow as tf

    if args.mirrored:  # must happen before TensorFlow initialises its devices
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    else:
        strategy = tf.distribute.get_strategy()

    import keras

    from rembert_tf import TFRemBertForSequenceClassification
    from rembert_tokenize import RemBertTokenizerFast

    if args.checkpoint is None:
        from build_tiny_checkpoint import build

        args.checkpoint, _ = build()

    tokenizer = RemBertTokenizerFast.from_pretrained(args.checkpoint)
    texts, labels = latin_or_not(EXAMPLES / "data" / "multilingual.txt")
    encoded = tokenizer(texts, padding=True, truncation=True, max_length=32, return_tensors="np")
    features = {
        "input_ids": encoded["input_ids"].astype("int32"),
        "attention_mask": encoded["attention_mask"].astype("int32"),
    }
    dataset = (
        tf.data.Dataset.from_tensor_slices((features, tf.constant(labels, tf.int32)))  # (x, y)
        .shuffle(len(texts), seed=0)
        .repeat()
        .batch(args.batch_size, drop_remainder=True)
    )

    keras.utils.set_random_seed(0)
    with strategy.scope():
        model = TFRemBertForSequenceClassification.from_pretrained(args.checkpoint, num_labels=2)
        model.compile(
            optimizer=keras.optimizers.AdamW(args.lr),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),  # on the logits
            metrics=["accuracy"],
        )

    class PrintLoss(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            print(f"step {epoch:3d} loss {logs['loss']:.4f}", flush=True)

    # One step per "epoch", so that each printed loss is one step's.
    history = model.fit(
        dataset, epochs=args.steps, steps_per_epoch=1, verbose=0, shuffle=False, callbacks=[PrintLoss()]
    )
    tracked = history.history["accuracy"]
    print(
        f"accuracy tracked by fit: first 5 steps {sum(tracked[:5]) / 5:.3f}, last 5 steps {sum(tracked[-5:]) / 5:.3f}"
    )

    logits = model.predict(features, batch_size=64, verbose=0)  # the logits, [sentences, 2]
    accuracy = float((logits.argmax(-1) == labels).mean())
    print(f"training accuracy {accuracy:.3f} ({len(texts)} sentences, {strategy.num_replicas_in_sync} device(s))")


if __name__ == "__main__":
    main()
