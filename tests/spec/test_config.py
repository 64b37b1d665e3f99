import json

import pytest

from rembert_spec import RemBertConfig
from tests.conftest import tiny_config

DOCUMENTED_DEFAULTS = dict(
    vocab_size=250300,
    hidden_size=1152,
    num_hidden_layers=32,
    num_attention_heads=18,
    input_embedding_size=256,
    output_embedding_size=1664,
    intermediate_size=4608,
    hidden_act="gelu",
    hidden_dropout_prob=0,
    attention_probs_dropout_prob=0,
    classifier_dropout_prob=0.1,
    max_position_embeddings=512,
    type_vocab_size=2,
    initializer_range=0.02,
    layer_norm_eps=1e-12,
    is_decoder=False,
    use_cache=True,
    add_cross_attention=False,
    pad_token_id=0,
    bos_token_id=312,
    eos_token_id=313,
    num_labels=2,
    problem_type=None,
    output_attentions=False,
    output_hidden_states=False,
    return_dict=True,
    tie_word_embeddings=False,
)


def test_documented_defaults():
    config = RemBertConfig()
    for name, value in DOCUMENTED_DEFAULTS.items():
        assert getattr(config, name) == value, name
    assert config.id2label == {0: "LABEL_0", 1: "LABEL_1"}
    assert config.label2id == {"LABEL_0": 0, "LABEL_1": 1}


def test_defaults_equal_hugging_face():
    import transformers

    theirs = transformers.RemBertConfig().to_dict()
    ours = RemBertConfig().to_dict()
    for name in DOCUMENTED_DEFAULTS:
        if name in theirs:
            assert ours[name] == theirs[name], name


@pytest.mark.parametrize(
    "field, value, words",
    [
        ("hidden_size", 0, "hidden_size must be a positive integer"),
        ("vocab_size", -3, "vocab_size must be a positive integer"),
        ("num_hidden_layers", 2.5, "num_hidden_layers must be a positive integer"),
        ("num_attention_heads", 5, "hidden_size (12) must be divisible by num_attention_heads (5)"),
        ("hidden_act", "swishy", "hidden_act must be one of"),
        ("hidden_dropout_prob", 1.0, "hidden_dropout_prob must be a probability in [0, 1)"),
        ("attention_probs_dropout_prob", -0.1, "attention_probs_dropout_prob must be a probability"),
        ("classifier_dropout_prob", 1.5, "classifier_dropout_prob must be a probability"),
        ("add_cross_attention", True, "add_cross_attention=True requires is_decoder=True"),
        ("layer_norm_eps", 0, "layer_norm_eps must be a positive number"),
        ("pad_token_id", 500, "pad_token_id (500) must be < vocab_size (99)"),
        ("problem_type", "ranking", "problem_type must be one of"),
        ("is_decoder", "yes", "is_decoder must be true or false"),
    ],
)
def test_validation_names_the_field(field, value, words):
    with pytest.raises(ValueError) as info:
        tiny_config(**{field: value})
    assert words in str(info.value)


def test_callable_activation_is_accepted_but_not_serialisable():
    config = tiny_config(hidden_act=lambda x: x)
    with pytest.raises(ValueError, match="callable hidden_act"):
        config.to_dict()


def test_json_round_trip_keeps_unknown_keys(tmp_path):
    data = {**tiny_config().to_dict(), "architectures": ["RemBertForMaskedLM"], "my_key": [1, 2]}
    (tmp_path / "config.json").write_text(json.dumps(data))
    config = RemBertConfig.from_pretrained(tmp_path)
    assert config.extra == {"architectures": ["RemBertForMaskedLM"], "my_key": [1, 2]}
    config.save_pretrained(tmp_path / "out")
    again = json.loads((tmp_path / "out" / "config.json").read_text())
    assert again == {**data, "model_type": "rembert"}


def test_from_pretrained_overrides_and_labels(tmp_path):
    tiny_config(id2label={0: "neg", 1: "pos"}).save_pretrained(tmp_path)
    config = RemBertConfig.from_pretrained(tmp_path)
    assert config.label2id == {"neg": 0, "pos": 1} and config.num_labels == 2
    config = RemBertConfig.from_pretrained(tmp_path, num_labels=5, is_decoder=True)
    assert config.num_labels == 5 and config.id2label[4] == "LABEL_4" and config.is_decoder


@pytest.mark.parametrize(
    "overrides",
    [
        {"id2label": {0: "neg", 1: "pos"}},
        {"id2label": {0: "neg", 1: "pos"}, "label2id": {"neg": 0, "pos": 1}},
        {"num_labels": 5},
        {"label2id": {"neg": 0, "pos": 1}},
    ],
)
def test_label_overrides_of_a_saved_head_as_hugging_face(tmp_path, overrides):
    """A checkpoint saved with 3 labels, fine-tuned for other labels: the labels given replace the stored ones
    and the count follows them, as in Hugging Face (whose label2id, when not given, stays the old head's; ours is
    the new id2label's inverse)."""
    import transformers

    tiny_config(num_labels=3).save_pretrained(tmp_path)
    ours = RemBertConfig.from_pretrained(tmp_path, **overrides)
    theirs = transformers.RemBertConfig.from_pretrained(tmp_path, **overrides)
    assert ours.num_labels == theirs.num_labels and ours.id2label == theirs.id2label
    if "label2id" in overrides or "id2label" not in overrides:
        assert ours.label2id == theirs.label2id
    else:
        assert ours.label2id == {label: i for i, label in ours.id2label.items()}
    replaced = tiny_config(num_labels=3).replace(**overrides)
    assert (replaced.num_labels, replaced.id2label, replaced.label2id) == (
        ours.num_labels,
        ours.id2label,
        ours.label2id,
    )


def test_hugging_face_reads_ours_and_we_read_theirs(tmp_path):
    import transformers

    fields = {
        k: v
        for k, v in tiny_config().to_dict().items()
        if k not in ("id2label", "label2id", "num_labels", "problem_type")
    }
    theirs = transformers.RemBertConfig(**fields, num_labels=3, problem_type="regression")
    theirs.save_pretrained(tmp_path / "hf")
    ours = RemBertConfig.from_pretrained(tmp_path / "hf")
    assert ours.num_labels == 3 and ours.problem_type == "regression" and ours.hidden_size == 12
    ours.save_pretrained(tmp_path / "ours")
    back = transformers.RemBertConfig.from_pretrained(tmp_path / "ours")
    assert back.num_labels == 3 and back.output_embedding_size == 10 and back.model_type == "rembert"


@pytest.mark.parametrize(
    "content, words",
    [
        ("{not json", "not valid JSON"),
        ('{"model_type": "bert"}', "model_type is 'bert'"),
        ('{"hidden_size": -1}', "hidden_size must be a positive integer"),
        ("[1, 2]", "expected a JSON object"),
    ],
)
def test_bad_config_files(tmp_path, content, words):
    (tmp_path / "config.json").write_text(content)
    with pytest.raises(ValueError) as info:
        RemBertConfig.from_pretrained(tmp_path)
    assert words in str(info.value) and "config.json" in str(info.value)
