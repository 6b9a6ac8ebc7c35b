"""S2IGAN (Wang et al., Interspeech 2020), in the order the data flows: the SEN (speech and image encoders,
matching + distinctive losses), the DSG with conditioning augmentation, the discriminators and the RS, their
training, the pipeline wav -> images, evaluation and export."""
