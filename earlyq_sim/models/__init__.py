"""Models: built-in UNet configs, loaders and shipped weights."""
