"""Distillation losses of BiFSMN: the Haar high-pass, HED (v1) and FID (v2), docs/design.md#hed.

Block outputs of the D-FSMN models are ``(B, T, 1, C)`` tensors (time first, channels last;
``T = 8`` time steps, ``C = 128`` memory channels). The official code treats each one as a
one-channel image over (channel, time) and filters it with a J = 1 2-D Haar wavelet; for even
sizes that is exactly "F minus its 2x2 block mean" (docs/design.md#the-haar-high-pass), which is
what is computed here; an odd size is zero-padded by one first, as pytorch_wavelets' mode 'zero'
does.

All reductions (standard deviations, Frobenius norms) run over the whole batch tensor, as in the
official code: under a distribution strategy that is the per-replica batch.
"""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf

#: Distillation choices of the trainer: v1's HED, v2's FID, or plain cross-entropy.
DISTILL_MODES: tuple[str, ...] = ("hed", "fid", "none")

# Guards the normalisations against an all-zero map (e.g. a dead block at initialisation); it is
# the epsilon torch's F.normalize uses, far below any real map's norm.
_EPSILON = 1e-12


def _check_block_shape(features: tf.Tensor) -> None:
    shape = features.shape
    if shape.rank != 4 or shape[2] != 1:
        raise ValueError(f"expected block features of shape (B, T, 1, C), got {shape}")
    if shape[1] is None or shape[3] is None:
        raise ValueError(f"the J=1 Haar filter needs static T and C; got T={shape[1]}, C={shape[3]}")


def haar_low_pass(features: tf.Tensor) -> tf.Tensor:
    """J = 1 Haar low-pass band of block features: each 2x2 (time, channel) block's mean.

    An odd ``T`` or ``C`` gets one zero row or column at its end first, as pytorch_wavelets'
    mode 'zero' pads it (a frontend of 51 frames gives ``T = 13``), and the result is cut back.

    Args:
        features: ``(B, T, 1, C)`` float tensor.

    Returns:
        ``(B, T, 1, C)``: the block mean broadcast back over its 2x2 block.
    """
    _check_block_shape(features)
    _, time_steps, _, channels = features.shape
    padded = tf.pad(features, [[0, 0], [0, time_steps % 2], [0, 0], [0, channels % 2]])
    even_t, even_c = time_steps + time_steps % 2, channels + channels % 2
    blocks = tf.reshape(padded, (-1, even_t // 2, 2, even_c // 2, 2))
    means = tf.reduce_mean(blocks, axis=(2, 4), keepdims=True)
    low = tf.reshape(tf.broadcast_to(means, tf.shape(blocks)), tf.shape(padded))
    return low[:, :time_steps, :, :channels]


@tf.keras.utils.register_keras_serializable(package="bifsmn_tf")
class HaarHighPass(tf.keras.layers.Layer):
    """J = 1 Haar high-pass of block features: ``F - Up2(AvgPool2x2(F))`` over (channel, time).

    Equal to pytorch_wavelets' ``DWT -> zero LL -> IDWT`` with the Haar wavelet and mode 'zero'
    (docs/design.md#the-haar-high-pass), an odd size zero-padded by one at its end and the
    output cut back to the input's size. Input and output: ``(B, T, 1, C)``.
    """

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        return inputs - haar_low_pass(inputs)

    def compute_output_shape(self, input_shape):
        return input_shape


def unbiased_std(tensor: tf.Tensor) -> tf.Tensor:
    """Standard deviation over all elements with Bessel's correction (``torch.std``)."""
    values = tf.reshape(tensor, (-1,))
    count = tf.cast(tf.size(values), values.dtype)
    centred = values - tf.reduce_mean(values)
    return tf.sqrt(tf.reduce_sum(tf.square(centred)) / (count - 1.0))


def hed_target(teacher_features: tf.Tensor) -> tf.Tensor:
    """The high-frequency-enhanced teacher target ``HP(F)/σ(HP(F)) + F/σ(F)``
    (docs/design.md#the-enhanced-teacher-target).

    Args:
        teacher_features: ``(B, T, 1, C)`` output of one teacher block.

    Returns:
        ``(B, T, 1, C)`` target, without gradient.
    """
    high = HaarHighPass()(teacher_features)
    target = high / unbiased_std(high) + teacher_features / unbiased_std(teacher_features)
    return tf.stop_gradient(target)


def attention_map_loss(student: tf.Tensor, target: tf.Tensor) -> tf.Tensor:
    """``‖ Q(S)/‖Q(S)‖ − Q(T)/‖Q(T)‖ ‖`` with ``Q(A) = A²`` and whole-tensor Frobenius norms
    (docs/design.md#the-loss).

    Args:
        student: a batch of block features.
        target: a tensor of the same shape.

    Returns:
        A scalar; the final norm is not squared, as in the official code.
    """
    student_map = tf.math.l2_normalize(tf.square(student), axis=None, epsilon=_EPSILON)
    target_map = tf.math.l2_normalize(tf.square(target), axis=None, epsilon=_EPSILON)
    squared = tf.reduce_sum(tf.square(student_map - target_map))
    # sqrt has an infinite gradient at 0 (identical maps); the epsilon keeps it finite.
    return tf.sqrt(squared + _EPSILON)


def hed_loss(student_blocks: Sequence[tf.Tensor], teacher_targets: Sequence[tf.Tensor]) -> tf.Tensor:
    """Sum over executed student blocks of :func:`attention_map_loss` against HED targets.

    Args:
        student_blocks: outputs of the student blocks run at one width, ``(B, T, 1, C)`` each.
        teacher_targets: :func:`hed_target` of the matching teacher blocks ``j(k)``, same order.
    """
    _check_pairs(student_blocks, teacher_targets)
    return tf.add_n([attention_map_loss(s, t) for s, t in zip(student_blocks, teacher_targets, strict=True)])


def fid_loss(
    student_blocks: Sequence[tf.Tensor],
    teacher_blocks: Sequence[tf.Tensor],
    student_logits: tf.Tensor,
    teacher_logits: tf.Tensor,
) -> tf.Tensor:
    """Frequency Independent Distillation of BiFSMNv2 (docs/design.md#fid-bifsmnv2).

    ``Σ_k [R2B(HP(S_k), HP(T_j(k))) + R2B(LP(S_k), LP(T_j(k)))] + MSE(z_S, z_T)`` where R2B is
    :func:`attention_map_loss`, HP/LP the Haar bands and the MSE a mean over ``B x classes``.

    Args:
        student_blocks: student block outputs at one width, ``(B, T, 1, C)`` each.
        teacher_blocks: the matching teacher block outputs (not enhanced), same order.
        student_logits: ``(B, num_classes)``.
        teacher_logits: ``(B, num_classes)``.
    """
    _check_pairs(student_blocks, teacher_blocks)
    high_pass = HaarHighPass()
    terms = []
    for student, teacher in zip(student_blocks, teacher_blocks, strict=True):
        teacher = tf.stop_gradient(teacher)
        terms.append(attention_map_loss(high_pass(student), high_pass(teacher)))
        terms.append(attention_map_loss(haar_low_pass(student), haar_low_pass(teacher)))
    logits_mse = tf.reduce_mean(tf.square(student_logits - tf.stop_gradient(teacher_logits)))
    return tf.add_n(terms) + logits_mse


def _check_pairs(student: Sequence[tf.Tensor], teacher: Sequence[tf.Tensor]) -> None:
    if len(student) != len(teacher) or not student:
        raise ValueError(
            f"need one teacher block per student block; got {len(student)} student and {len(teacher)} teacher blocks"
        )
