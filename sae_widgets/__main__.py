"""`python -m sae_widgets ...` (and `torchrun --nproc_per_node=N -m sae_widgets train ...`)."""

import sys

from sae_widgets.cli import main

sys.exit(main())
