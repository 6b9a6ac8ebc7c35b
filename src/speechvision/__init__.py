"""speechvision: cross-modal learning between speech and vision (S2IGAN, AVLM)."""

__version__ = "0.2.0"
