"""The names of the pretrained agents shipped inside the package (``src/deepq/pretrained/NAME``):
a module of its own so that the command line can list them without importing JAX."""

PRETRAINED_NAME = "lunarlander"  # the default: `deepq play` and `deepq eval` with no PATH
PRETRAINED_NAMES = ("lunarlander", "minatar-breakout")
