"""The emotion-aware audio-visual language model (Tan et al., Findings of EMNLP 2025): expressive speech
tokens, the unit vocoder, the speech LM, the face front-end, fusion, emotion recognition and spoken replies."""
