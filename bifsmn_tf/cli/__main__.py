"""``python -m bifsmn_tf.cli``: the ``bifsmn-tf`` command."""

import sys

from bifsmn_tf.cli import main

sys.exit(main())
