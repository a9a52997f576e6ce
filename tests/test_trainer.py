"""The Distiller's train/test steps, TrainConfig and the schedule, on real models and real TF."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

import bifsmn_tf  # noqa: F401  (Keras 2 before TensorFlow loads)
from bifsmn_tf.config import ConfigError
from bifsmn_tf.models.dfsmn import ModelConfig, build_bifsmn, build_teacher, feature_model
from bifsmn_tf.training.distill import fid_loss, hed_loss, hed_target
from bifsmn_tf.training.trainer import (
    Distiller,
    TrainConfig,
    build_optimizer,
    cosine_learning_rate,
    default_width_weights,
)

# Narrow layers keep graph tracing (the cost of each new train step) short; the depth, the widths
# and the block shapes (B, 8, 1, C) are the real ones.
CONFIG = ModelConfig(widths=(8, 4, 2), frontend_channels=4, hidden_size=32, memory_size=16)
BATCH = 8


@pytest.fixture(scope="module")
def batch():
    rng = np.random.default_rng(0)
    features = rng.normal(-50.0, 20.0, size=(BATCH, 32, 32)).astype(np.float32)
    labels = rng.integers(0, 12, size=BATCH).astype(np.int32)
    return tf.constant(features), tf.constant(labels)


@pytest.fixture(scope="module")
def teacher(batch):
    tf.keras.utils.set_random_seed(1)
    model = build_teacher(CONFIG)
    # Moving statistics that differ from any batch's, so inference mode is observable.
    for layer in model.layers:
        if isinstance(layer, tf.keras.layers.BatchNormalization):
            layer.moving_mean.assign(tf.fill(layer.moving_mean.shape, 0.3))
    return model


def _student(seed: int = 2) -> tf.keras.Model:
    tf.keras.utils.set_random_seed(seed)
    return build_bifsmn(CONFIG)


def _expected_objective(student, teacher, inputs, labels, widths, weights, distill, gamma, alpha=0.0):
    """The objective of docs/design.md#the-objective-per-step written out with the public loss
    functions; ``alpha``: the weight of the teacher's soft labels (Hinton's KD at T = 1, by its
    definition)."""
    total = 0.0
    teacher_outputs = feature_model(teacher)(inputs, training=False)
    soft_labels = tf.nn.softmax(teacher_outputs[0]).numpy()
    for width, weight in zip(widths, weights):
        outputs = feature_model(student, width)(inputs, training=True)
        ce = tf.reduce_mean(tf.keras.losses.sparse_categorical_crossentropy(labels, outputs[0], from_logits=True))
        log_probs = tf.nn.log_softmax(outputs[0]).numpy()
        soft_ce = float(np.mean(-np.sum(soft_labels * log_probs, axis=1)))
        ce = (1 - alpha) * float(ce) + alpha * soft_ce
        blocks = [teacher_outputs[1 + j] for j in CONFIG.blocks(width)]
        if distill == "hed":
            extra = hed_loss(outputs[1:], [hed_target(b) for b in blocks])
        elif distill == "fid":
            extra = fid_loss(outputs[1:], blocks, outputs[0], teacher_outputs[0])
        else:
            extra = 0.0
        total += weight * (ce + gamma * extra)
    return float(total)


@pytest.mark.slow
@pytest.mark.parametrize("distill", ["hed", "fid", "none"])
def test_train_step_reports_the_weighted_objective_per_width(batch, teacher, distill):
    inputs, labels = batch
    student = _student()
    expected = _expected_objective(student, teacher, inputs, labels, (8, 4, 2), (1.0, 0.5, 0.25), distill, 0.01)
    distiller = Distiller(student, teacher if distill != "none" else None, distill=distill)
    distiller.compile(optimizer=tf.keras.optimizers.SGD(0.0))
    logs = distiller.train_on_batch(inputs, labels, return_dict=True)
    assert logs["loss"] == pytest.approx(expected, rel=1e-4)
    for width in (8, 4, 2):
        assert 0.0 <= logs[f"acc_{width}"] <= 1.0 and math.isfinite(logs[f"ce_{width}"])
        assert (f"distill_{width}" in logs) == (distill != "none")
    assert logs["examples"] == BATCH


# 80 s a case: slow, to keep the default run inside its 20 minutes (test_distill checks the
# distillation formulas in the default run).
@pytest.mark.slow
@pytest.mark.parametrize("alpha", [0.5, 1.0])
def test_logit_distillation_mixes_the_teachers_soft_labels_into_each_width(batch, teacher, alpha):
    inputs, labels = batch
    student = _student()
    expected = _expected_objective(student, teacher, inputs, labels, (8, 4, 2), (1.0, 0.5, 0.25), "none", 0.0, alpha)
    plain = _expected_objective(student, teacher, inputs, labels, (8, 4, 2), (1.0, 0.5, 0.25), "none", 0.0)
    distiller = Distiller(student, teacher, distill="none", logit_distill=alpha)
    distiller.compile(optimizer=tf.keras.optimizers.SGD(0.0))
    logs = distiller.train_on_batch(inputs, labels, return_dict=True)
    assert logs["loss"] == pytest.approx(expected, rel=1e-4)
    assert abs(expected - plain) > 1e-3, "the soft labels must change the objective"
    assert "distill_8" not in logs


def test_one_sgd_step_applies_the_gradient_of_the_summed_objective_with_l2(batch, teacher):
    """Δv = -lr · ∂(Σ_w λ_w L_w + wd/2 Σ v²)/∂v for every student variable, in one step; the
    teacher (weights and BN moving statistics) does not change."""
    inputs, labels = batch
    lr, wd = 0.01, 1e-3
    teacher_weights = {w.name: w.numpy() for w in teacher.weights}  # BN moving statistics too
    student = _student()
    before = [v.numpy() for v in student.trainable_variables]
    with tf.GradientTape() as tape:
        objective = _expected_objective_tensor(student, teacher, inputs, labels)
        objective += 0.5 * wd * tf.add_n([tf.reduce_sum(tf.square(v)) for v in student.trainable_variables])
    gradients = tape.gradient(objective, student.trainable_variables)

    student = _student()
    distiller = Distiller(student, teacher, weight_decay=wd)
    distiller.compile(optimizer=tf.keras.optimizers.SGD(lr))
    logs = distiller.train_on_batch(inputs, labels, return_dict=True)
    assert int(distiller.optimizer.iterations) == 1
    assert logs["loss"] == pytest.approx(
        float(objective) - 0.5 * wd * sum(float(np.sum(b**2)) for b in before), rel=1e-4
    )
    assert not teacher.trainable
    assert {w.name for w in teacher.weights} == set(teacher_weights)
    for weight in teacher.weights:
        np.testing.assert_array_equal(weight.numpy(), teacher_weights[weight.name], err_msg=weight.name)
    for variable, old, gradient in zip(student.trainable_variables, before, gradients):
        expected = old if gradient is None else old - lr * gradient.numpy()
        np.testing.assert_allclose(variable.numpy(), expected, rtol=1e-3, atol=1e-6, err_msg=variable.name)


def test_every_width_shares_one_front_end_pass_per_step(batch, teacher):
    """The front end runs once per step for all widths: its BN moving statistics take the one
    update of a single width model's training pass (three, one per width, before)."""
    inputs, labels = batch
    reference = _student()
    feature_model(reference, 8)(inputs, training=True)
    student = _student()
    distiller = Distiller(student, teacher)
    distiller.compile(optimizer=tf.keras.optimizers.SGD(0.0))
    distiller.train_on_batch(inputs, labels)
    for name in ("fe0_bn", "fe3_bn"):
        for statistic in ("moving_mean", "moving_variance"):
            np.testing.assert_allclose(
                getattr(student.get_layer(name), statistic).numpy(),
                getattr(reference.get_layer(name), statistic).numpy(),
                rtol=1e-5,
                atol=1e-7,
                err_msg=f"{name}.{statistic}",
            )


def _expected_objective_tensor(student, teacher, inputs, labels):
    total = 0.0
    teacher_outputs = feature_model(teacher)(inputs, training=False)
    for width, weight in zip((8, 4, 2), (1.0, 0.5, 0.25)):
        outputs = feature_model(student, width)(inputs, training=True)
        ce = tf.reduce_mean(tf.keras.losses.sparse_categorical_crossentropy(labels, outputs[0], from_logits=True))
        targets = [hed_target(teacher_outputs[1 + j]) for j in CONFIG.blocks(width)]
        total += weight * (ce + 0.01 * hed_loss(outputs[1:], targets))
    return total


def test_teacher_training_matches_plain_keras_fit(batch):
    """With one width and no teacher, the step is ordinary supervised training."""
    inputs, labels = batch
    losses = {}
    for name in ("keras", "distiller"):
        tf.keras.utils.set_random_seed(3)
        model = build_teacher(CONFIG.replace(teacher_dropout=0.0))
        optimizer = tf.keras.optimizers.SGD(0.005, momentum=0.9)
        if name == "keras":
            model.compile(optimizer, tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True))
            losses[name] = [model.train_on_batch(inputs, labels) for _ in range(3)]
        else:
            trainer = Distiller(model, widths=(8,), width_weights=(1.0,), distill="none")
            trainer.compile(optimizer)
            losses[name] = [trainer.train_on_batch(inputs, labels, return_dict=True)["loss"] for _ in range(3)]
    np.testing.assert_allclose(losses["distiller"], losses["keras"], rtol=1e-4)


@pytest.mark.slow
def test_test_step_evaluates_every_width_in_inference_mode(batch, teacher):
    inputs, labels = batch
    student = _student()
    distiller = Distiller(student, teacher)
    distiller.compile(optimizer=tf.keras.optimizers.SGD(0.0))
    logs = distiller.evaluate(inputs, labels, batch_size=BATCH, return_dict=True, verbose=0)
    served = distiller(inputs, training=False)
    inference = {w: feature_model(student, w)(inputs, training=False)[0].numpy() for w in (8, 4, 2)}
    for width in (8, 4, 2):
        # A binary net turns a float rounding next to a sign's tie into a different clip: two
        # computations of the same graph (one graph for all widths, or one per width; threads
        # splitting sums differently) may disagree on a clip, never on more.
        agree = np.all(np.isclose(served[str(width)].numpy(), inference[width], rtol=1e-4, atol=1e-4), axis=1)
        assert np.sum(~agree) <= 1, f"width {width}: {np.sum(~agree)} of {BATCH} clips differ"
        accuracy = float(np.mean(np.argmax(inference[width], axis=-1) == labels.numpy()))
        assert abs(logs[f"acc_{width}"] - accuracy) <= 1 / BATCH + 1e-9
    # Last: a training-mode pass moves the BN moving statistics.
    for width in (8, 4, 2):
        training = feature_model(student, width)(inputs, training=True)[0].numpy()
        assert not np.allclose(inference[width], training, atol=1e-3), "training mode must differ"
    assert "distill_8" not in logs and "examples" not in logs


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"teacher": None, "distill": "hed"}, "needs a teacher"),
        ({"teacher": None, "distill": "none", "logit_distill": 0.5}, "needs a teacher"),
        ({"distill": "kd"}, "distill must be one of"),
        ({"widths": (8, 4), "width_weights": (1.0,)}, "one weight per width"),
    ],
)
def test_distiller_rejects_inconsistent_arguments(teacher, kwargs, message):
    kwargs = {"teacher": teacher, **kwargs}
    with pytest.raises(ValueError, match=message):
        Distiller(teacher, **kwargs)


def test_train_config_defaults_are_the_papers_and_round_trip(tmp_path):
    paper = TrainConfig()
    assert TrainConfig.load(paper.save(tmp_path / "paper.json")) == paper
    assert (paper.epochs, paper.batch_size, paper.learning_rate, paper.weight_decay) == (300, 96, 5e-3, 1e-4)
    assert (paper.momentum, paper.width_weights, paper.gamma) == (0.9, (1.0, 0.5, 0.25), 0.01)
    teacher = paper.replace(logit_distill=0.5).for_teacher(8)
    assert (teacher.widths, teacher.distill, teacher.logit_distill) == ((8,), "none", 0.0)
    assert paper.for_teacher(4).widths == (4,)
    assert default_width_weights((8, 4, 2, 1), 8) == (1.0, 0.5, 0.25, 0.125)
    assert default_width_weights((4, 2), 4) == (1.0, 0.5)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"widths": (4, 8), "width_weights": (1.0, 0.5)}, "widest first"),
        ({"widths": (8, 0), "width_weights": (1.0, 0.5)}, "widths must be >= 1"),
        ({"widths": (8, 4)}, "one width weight per width"),
        ({"distill": "kd"}, "distill must be"),
        ({"epochs": 0}, "epochs"),
        ({"momentum": 1.0}, "momentum"),
        ({"optimizer": "rmsprop"}, "optimizer must be"),
        ({"monotone_tolerance": -0.01}, "monotone_tolerance"),
        ({"logit_distill": 1.5}, "logit_distill"),
    ],
)
def test_train_config_rejects_bad_values(changes, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig(**changes)


def test_cosine_schedule_is_stepped_per_epoch_to_zero():
    config = TrainConfig(epochs=10, learning_rate=0.1)
    rates = [cosine_learning_rate(epoch, config) for epoch in range(11)]
    assert (
        rates[0] == pytest.approx(0.1)
        and rates[5] == pytest.approx(0.05)
        and rates[10] == pytest.approx(0.0, abs=1e-12)
    )
    assert all(a > b for a, b in zip(rates, rates[1:]))
    optimizer = build_optimizer(config)
    assert float(optimizer.learning_rate) == pytest.approx(0.1) and float(optimizer.momentum) == 0.9
    adam = build_optimizer(config.replace(optimizer="adam"))
    assert isinstance(adam, tf.keras.optimizers.Adam) and float(adam.learning_rate) == pytest.approx(0.1)


MIRRORED_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import bifsmn_tf
    import numpy as np
    import tensorflow as tf
    tf.config.set_logical_device_configuration(
        tf.config.list_physical_devices("CPU")[0],
        [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()],
    )
    from bifsmn_tf.models.dfsmn import ModelConfig, build_bifsmn, build_teacher
    from bifsmn_tf.training.trainer import Distiller

    config = ModelConfig(widths=(8, 4, 2), frontend_channels=4, hidden_size=32, memory_size=16)
    rng = np.random.default_rng(0)
    inputs = rng.normal(-50.0, 20.0, size=(8, 32, 32)).astype(np.float32)
    labels = rng.integers(0, 12, size=8).astype(np.int32)
    tf.keras.utils.set_random_seed(1)
    teacher_weights = build_teacher(config).get_weights()
    tf.keras.utils.set_random_seed(2)
    student_weights = build_bifsmn(config).get_weights()

    def one_step(strategy, x, y):
        with strategy.scope():
            teacher, student = build_teacher(config), build_bifsmn(config)
            teacher.set_weights(teacher_weights)
            student.set_weights(student_weights)
            distiller = Distiller(student, teacher, weight_decay=1e-3)
            distiller.compile(optimizer=tf.keras.optimizers.SGD(0.01))
        dataset = tf.data.Dataset.from_tensors((x, y))
        history = distiller.fit(dataset, epochs=1, verbose=0)
        return student, distiller, history.history

    initial = build_bifsmn(config)
    initial.set_weights(student_weights)
    mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    student, distiller, history = one_step(mirrored, inputs, labels)
    halves = [one_step(tf.distribute.get_strategy(), inputs[i:i + 4], labels[i:i + 4])[0] for i in (0, 4)]
    deltas = [
        float(np.max(np.abs(v.numpy() - (a.numpy() + b.numpy()) / 2)))
        for v, a, b in zip(student.trainable_variables, *[h.trainable_variables for h in halves])
    ]
    print(json.dumps({
        "replicas": mirrored.num_replicas_in_sync,
        "iterations": int(distiller.optimizer.iterations.numpy()),
        "max_delta": max(deltas),
        "moved": float(max(np.max(np.abs(v.numpy() - w.numpy()))
                           for v, w in zip(student.trainable_variables, initial.trainable_variables))),
        "keys": sorted(history),
    }))
    """
)


@pytest.mark.slow
def test_train_step_runs_under_mirrored_strategy_with_two_replicas(tmp_path):
    """Two logical CPUs: one step on a batch of 8 equals the mean of the steps on its halves."""
    script = tmp_path / "mirrored.py"
    script.write_text(MIRRORED_SCRIPT)
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["replicas"] == 2 and report["iterations"] == 1
    assert report["moved"] > 1e-4
    assert report["max_delta"] < 1e-3 * report["moved"] + 1e-6
    assert {"acc_8", "acc_4", "acc_2", "distill_8", "loss"} <= set(report["keys"])


def test_distiller_for_recipe_takes_every_step_option_of_the_config(teacher):
    config = TrainConfig(
        widths=(8, 4), width_weights=(1.0, 0.3), distill="fid", gamma=0.2, logit_distill=0.4, weight_decay=1e-3
    )
    distiller = Distiller.for_recipe(_student(), teacher, config)
    assert (distiller.widths, distiller.width_weights, distiller.distill) == ((8, 4), (1.0, 0.3), "fid")
    assert (distiller.gamma, distiller.logit_distill, distiller.weight_decay) == (0.2, 0.4, 1e-3)
    assert distiller.teacher is teacher
