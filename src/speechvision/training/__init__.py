"""Training: checkpoints, the SEN loop and (later) the GAN loop."""
