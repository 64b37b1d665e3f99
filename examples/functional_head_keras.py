"""The RemBERT backbone as a layer of your own Keras functional model, with your own head.

The head here mean-pools the token states over the attention mask and classifies the sentence (written mostly in
Latin letters or not, `data/multilingual.txt`). The model is compiled with a loss and metrics, trained with `fit`
on (x, y), saved as a `.keras` file, read back with `keras.models.load_model` (nothing to register: `import
rembert_tf` is enough) and exported for serving. Prints the loss of every step, then what was checked.

    python examples/functional_head_keras.py --steps 40
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent
sys.path.insert(0, str(EXAMPLES.parent))  # run from a checkout without installing
sys.path.insert(0, str(EXAMPLES))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--checkpoint", type=Path, default=None, help="default: the bundled tiny checkpoint")
    args = parser.parse_args()

    import keras
    import numpy as np
    import tensorflow as tf
    from finetune_classification_keras import latin_or_not

    from rembert_tf import TFRemBertModel
    from rembert_tokenize import RemBertTokenizerFast

    if args.checkpoint is None:
        from build_tiny_checkpoint import build

        args.checkpoint, _ = build()

    tokenizer = RemBertTokenizerFast.from_pretrained(args.checkpoint)
    texts, labels = latin_or_not(EXAMPLES / "data" / "multilingual.txt")
    encoded = tokenizer(texts, padding=True, truncation=True, max_length=32, return_tensors="np")
    x = {name: encoded[name].astype("int32") for name in ("input_ids", "attention_mask")}
    y = np.array(labels, np.int32)

    keras.utils.set_random_seed(0)
    backbone = TFRemBertModel.from_pretrained(args.checkpoint, add_pooling_layer=False)

    # The functional model: inputs by name, the backbone as a layer (its outputs are read by name), your head.
    input_ids = keras.Input(shape=(None,), dtype="int32", name="input_ids")
    attention_mask = keras.Input(shape=(None,), dtype="int32", name="attention_mask")
    states = backbone({"input_ids": input_ids, "attention_mask": attention_mask})["last_hidden_state"]
    weights = keras.ops.expand_dims(keras.ops.cast(attention_mask, states.dtype), -1)
    pooled = keras.ops.sum(states * weights, axis=1) / keras.ops.maximum(keras.ops.sum(weights, axis=1), 1.0)
    hidden = keras.layers.Dense(32, activation="gelu", name="head_hidden")(pooled)
    logits = keras.layers.Dense(2, name="head_logits")(keras.layers.Dropout(0.1)(hidden))
    model = keras.Model({"input_ids": input_ids, "attention_mask": attention_mask}, logits, name="latin_or_not")

    model.compile(
        optimizer=keras.optimizers.AdamW(args.lr),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )

    class PrintLoss(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            print(f"step {epoch:3d} loss {logs['loss']:.4f}", flush=True)

    dataset = (
        tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(y), seed=0).repeat().batch(args.batch_size)
    )  # (x, y)
    # One step per "epoch", so that each printed loss is one step's.
    model.fit(dataset, epochs=args.steps, steps_per_epoch=1, verbose=0, callbacks=[PrintLoss()])

    predicted = model.predict(x, batch_size=64, verbose=0)
    print(f"training accuracy {float((predicted.argmax(-1) == y).mean()):.3f} ({len(y)} sentences)")
    with tempfile.TemporaryDirectory() as directory:
        model.save(Path(directory) / "latin_or_not.keras")
        again = keras.models.load_model(Path(directory) / "latin_or_not.keras")
        difference = float(np.abs(again.predict(x, batch_size=64, verbose=0) - predicted).max())
        print(f"reloaded from .keras: max |difference| {difference:.1e}")
        model.export(Path(directory) / "serving", verbose=False)
        artifact = tf.saved_model.load(str(Path(directory) / "serving"))  # plain TensorFlow, no rembert_tf needed
        served = artifact.serve({name: tf.constant(value) for name, value in x.items()})
        print(f"exported SavedModel: max |difference| {float(np.abs(served.numpy() - predicted).max()):.1e}")


if __name__ == "__main__":
    main()
