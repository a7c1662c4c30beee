"""Keras to TensorFlow Lite: the float and quantized conversions, the selective int8 of the budget search,
and the metadata the Android app reads. May import train and convert's leaves (errors, shapes, calibration).
"""
