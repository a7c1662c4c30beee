"""Keras to Core ML: the ML Program and NeuralNetwork conversion of a traced tf.function, the compressed
variants (int8w, pal*, int4b, w8a8), the TF ops coremltools lacks, and how an artifact is described in the
manifest. May import train and the rest of convert's leaves (errors, shapes, calibration).
"""
