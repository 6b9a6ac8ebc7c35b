"""System-agnostic pieces: audio, speech synthesis, checkpoints, images, Inception, torchrun, errors.

Nothing here imports the rest of the package."""
