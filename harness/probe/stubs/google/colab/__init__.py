"""Inert stand-in for Colab's `google.colab` inside the grading sandbox (the real package exists only
on Colab). `google` stays a namespace package, so `google.protobuf` is untouched."""

from google.colab import drive, files  # noqa: F401
