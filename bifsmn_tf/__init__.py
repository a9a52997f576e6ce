"""bifsmn-tf: BiFSMN, the 1-bit Deep-FSMN keyword spotter, in TensorFlow/Keras + Larq, deployed with LCE.

Larq 0.14 needs Keras 2 (``tf-keras``). TensorFlow 2.16 picks Keras 2 for ``tf.keras`` only when
``TF_USE_LEGACY_KERAS=1`` is set before ``tf.keras`` is first touched, so this package sets it on
import and refuses to run when Keras 3 has already been loaded into the process.
"""

import os
import sys

__version__ = "0.1.0"


class Keras3AlreadyImportedError(ImportError):
    """Raised when Keras 3 was imported before bifsmn_tf, so tf.keras can no longer be Keras 2."""


def _require_legacy_keras() -> None:
    keras3 = sys.modules.get("keras")
    version = getattr(keras3, "__version__", "") if keras3 is not None else ""
    # Keras 3 in the process is harmless when the variable was set before TensorFlow chose
    # its tf.keras; without it, tf.keras may already be Keras 3 and Larq would break later.
    if version.startswith("3") and os.environ.get("TF_USE_LEGACY_KERAS") != "1":
        raise Keras3AlreadyImportedError(
            f"Keras {version} was imported before bifsmn_tf. Larq needs Keras 2 (tf-keras): "
            "import bifsmn_tf first, or set TF_USE_LEGACY_KERAS=1 before importing TensorFlow "
            "or Keras (in a notebook: restart the kernel and import bifsmn_tf in the first cell)."
        )
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    # TensorFlow's C++ start-up chatter (CUDA probes, oneDNN notices) buries CLI output.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


_require_legacy_keras()
