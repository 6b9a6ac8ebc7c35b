"""The AVLM's corpora: synthetic spoken-emotion speech, the synthetic audio-visual set, loaders of real corpora."""
