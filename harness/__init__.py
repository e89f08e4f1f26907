"""A grading harness for Keras/TensorFlow CNN coursework."""

__version__ = "0.1.0"
