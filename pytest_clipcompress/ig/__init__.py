"""Integrated Gradients: the maths (:mod:`.integrated_gradients`, torch and captum), which images and
which reference input (:mod:`.explain`), and where model-input pixels come from (:mod:`.geometry`)."""
